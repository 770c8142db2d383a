"""The pairwise family."""
