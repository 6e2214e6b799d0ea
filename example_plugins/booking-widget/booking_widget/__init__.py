"""Booking widget: an example Services AI plugin with a dashboard card."""
