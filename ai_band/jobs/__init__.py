"""ai_band/jobs."""
