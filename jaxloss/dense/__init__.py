"""The dense family."""
