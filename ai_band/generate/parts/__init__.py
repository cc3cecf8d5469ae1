"""ai_band/generate/parts."""
