"""Local stand-ins for external systems (development and tests only)."""
