"""ai_band/preview."""
