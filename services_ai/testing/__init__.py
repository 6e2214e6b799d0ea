"""Test support for the platform and for plugin authors."""
