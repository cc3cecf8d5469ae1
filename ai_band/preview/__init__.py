"""Audio preview of a rendered mix through PortAudio, started on the host's next bar line (:mod:`.player`)."""
