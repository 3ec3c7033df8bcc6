"""Output: the terminal table (the HTML report comes later)."""
