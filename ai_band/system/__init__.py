"""ai_band/system."""
