"""The shipped example flow files (data only)."""
