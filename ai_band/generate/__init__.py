"""ai_band/generate."""
