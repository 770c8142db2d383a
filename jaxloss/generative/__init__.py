"""The generative family."""
