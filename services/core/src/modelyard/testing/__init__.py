"""Test helpers shared by the whole suite (loaded by tests/conftest.py as a pytest plugin)."""
