"""Test configuration shared by every test module."""

import jax

# Accidental broadcasting between arrays of different ranks must fail loudly (as in equinox
# and optimistix): every loss broadcasts explicitly.
jax.config.update("jax_numpy_rank_promotion", "raise")
