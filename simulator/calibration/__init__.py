"""Calibrating a profile to the user's own measured runs (``xpusim calibrate``)."""
