"""``Peer``: one loss of a peer library (``torch.nn.functional``, ``optax.losses``) and its
jaxloss translation, as ``tests/_suite/test_catalogues.py`` checks it.

Each family declares the peers of its losses in ``tests/<family>/cases.py`` (``PEERS``,
keyed ``"torch:<name>"`` or ``"optax:<name>"``, with an optional ``[variant]`` suffix when
one peer function needs several translations, e.g. integer labels and probabilities). The
catalogue test introspects both libraries at their pinned versions and fails on any loss
without an entry, so a new upstream loss shows up as a failing test when a pin moves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

LIBRARIES = ("torch", "optax")


@dataclasses.dataclass(frozen=True)
class Peer:
    """A peer's loss and its jaxloss translation, checked to give the same numbers.

    Attributes:
      peer: the peer's function on the inputs, ``(*inputs, **options)``: torch float64
        tensors for ``"torch:"`` entries (differentiable ones with ``requires_grad``), JAX
        arrays of the inputs' dtypes for ``"optax:"`` entries; returns the peer's output.
      ours: the jaxloss translation on JAX arrays of the inputs' dtypes,
        ``(*inputs, **options)``; returns an array of the peer's output shape.
      make_inputs: ``rng -> tuple`` of NumPy inputs, drawing random shapes from ``rng``.
      spelling: the translation as the porting page writes it; the page must contain it.
      options: every option combination checked, each passed to both functions.
      differentiable: positions of the inputs whose gradients are compared (a random
        cotangent of the output's shape, pulled back through both functions).
      rtol, atol: tolerances of values and gradients (float32 against the peer).
    """

    peer: Callable[..., Any]
    ours: Callable[..., Any]
    make_inputs: Callable[[np.random.Generator], tuple]
    spelling: str
    options: tuple[dict, ...] = ({},)
    differentiable: tuple[int, ...] = (0,)
    rtol: float = 1e-5
    atol: float = 1e-6


def library(key: str) -> str:
    """``"torch:mse_loss[weights]"`` -> ``"torch"``."""
    return key.split(":")[0]


def peer_name(key: str) -> str:
    """``"torch:mse_loss[weights]"`` -> ``"mse_loss"``: the peer function's name."""
    return key.split(":", 1)[1].split("[")[0]
