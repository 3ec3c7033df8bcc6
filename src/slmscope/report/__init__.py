"""Output: the terminal tables, the self-contained HTML report, and file exports."""
