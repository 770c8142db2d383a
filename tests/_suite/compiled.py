"""Registry entries compiled once per process, shared by the suites that iterate over them.

``jax.jit`` caches a compilation per input shape and dtype on the function object, so
each shared suite (properties, promises, ...) reuses one compiled loss per entry and shape
as long as they ask for it here (the conftest puts all the tests of an entry on one xdist
worker). Inputs are a list (positional inputs of the entry) and ``where`` (None or a mask).
"""

from __future__ import annotations

import functools

import jax

from tests._suite.registry import REGISTRY, call


@functools.cache
def value(name: str, reduction: str = "mean"):
    """``jit`` of the entry: ``(args, where) -> value``."""

    def loss(args, where):
        return call(name, *args, where=where, reduction=reduction)

    return jax.jit(loss)


@functools.cache
def value_and_grads(name: str, reduction: str = "mean"):
    """``jit(value_and_grad)`` over the entry's differentiable inputs: ``(args, where)``."""
    case = REGISTRY[name]

    def run(args, where):
        def loss(*diff):
            full = list(args)
            for position, input_value in zip(case.differentiable, diff, strict=True):
                full[position] = input_value
            return call(name, *full, where=where, reduction=reduction)

        diff = [args[i] for i in case.differentiable]
        return jax.value_and_grad(loss, argnums=tuple(range(len(diff))))(*diff)

    return jax.jit(run)
