"""Integrations with other Django apps; each is optional and needs its own extra installed."""
