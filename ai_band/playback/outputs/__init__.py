"""ai_band/playback/outputs."""
