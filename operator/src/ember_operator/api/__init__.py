"""Ember's public API: the pydantic models are the one source of truth for the
CRDs (``crd.py`` turns them into schemas) and for parsing bodies in handlers."""
