"""OSC API v1 (docs/osc-api.md): wire protocol helpers, the UDP server and the address handlers."""
