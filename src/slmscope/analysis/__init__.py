"""Statistics over stored results."""
