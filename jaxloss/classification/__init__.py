"""The classification family."""
