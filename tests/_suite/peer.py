"""``Peer``: one loss of a peer library (``torch.nn.functional``, ``optax.losses``,
pytorch-metric-learning's, MONAI's and kornia's ``losses``) and its jaxloss translation, as
``tests/_suite/test_catalogues.py`` checks it.

Each family declares the peers of its losses in ``tests/<family>/cases*.py`` (``PEERS``,
keyed ``"torch:<name>"``, ``"optax:<name>"``, ``"pml:<ClassName>"``,
``"monai:<ClassName>"`` or ``"kornia:<name>"``, with an optional ``[variant]`` suffix when
one peer function needs several translations, e.g. integer labels and probabilities). The
catalogue test introspects the libraries at their pinned versions and fails on any loss
without an entry (for PML, MONAI and kornia: without an entry or a line in the library's
``NOT_TRANSLATED`` table), so a new upstream loss shows up as a failing test when a pin
moves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

LIBRARIES = ("torch", "optax", "pml", "monai", "kornia")


@dataclasses.dataclass(frozen=True)
class Peer:
    """A peer's loss and its jaxloss translation, checked to give the same numbers.

    Attributes:
      peer: the peer's function on the inputs, ``(*inputs, **options)``: torch float64
        tensors for ``"torch:"``, ``"pml:"``, ``"monai:"`` and ``"kornia:"`` entries
        (channel-last inputs, which a MONAI or kornia peer moves channel first itself;
        differentiable ones with ``requires_grad``; integers int64 except for torch, as
        the other libraries index with their labels), JAX
        arrays of the inputs' dtypes for ``"optax:"`` entries; returns the peer's output (a
        torch tensor, or a JAX array). A PML peer builds its loss object inside (a miner
        too, if the translation is of one), and puts a weights input in place of its
        ``W`` parameter.
      ours: the jaxloss translation on JAX arrays of the inputs' dtypes,
        ``(*inputs, **options)``; returns an array of the peer's output shape. It runs
        under ``jax.jit`` (the inputs traced, the options static), so it must not need
        the inputs' values in Python.
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


# PML's reducers for jaxloss's reductions ("none": DoNothingReducer, which returns PML's loss
# dictionary; the per-example losses are its ``["loss"]["losses"]``).
PML_REDUCERS = {"mean": "MeanReducer", "sum": "SumReducer", "none": "DoNothingReducer"}


def pml_reducer(reduction: str):
    """A new PML reducer for jaxloss's ``reduction``, for a ``"pml:"`` peer's loss."""
    from pytorch_metric_learning import reducers

    return getattr(reducers, PML_REDUCERS[reduction])()
