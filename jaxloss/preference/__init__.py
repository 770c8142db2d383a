"""The preference family."""
