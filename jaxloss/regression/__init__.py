"""The regression family."""
