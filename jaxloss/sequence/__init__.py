"""The sequence family."""
