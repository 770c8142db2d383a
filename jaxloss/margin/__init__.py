"""The margin family."""
