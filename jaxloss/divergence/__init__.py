"""The divergence family."""
