"""Test package (see tests/conftest.py for the tiers)."""
