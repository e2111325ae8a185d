"""The FastAPI service: a thin shell over curate/ (no selection logic here)."""
