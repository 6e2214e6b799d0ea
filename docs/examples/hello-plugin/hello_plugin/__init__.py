"""The Hello Plugin plugin for Services AI."""
