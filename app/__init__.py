"""The HTTP edge (FastAPI): schemas, routes, settings, metrics. No reward maths lives here."""
