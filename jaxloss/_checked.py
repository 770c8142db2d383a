"""Checked mode: value errors (NaN, labels out of range, ...) raised, with ``checkify``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
from jax.experimental import checkify

from jaxloss import _checks


def checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (any jaxloss loss, or a function calling some) with its value checks on.

    Shapes and dtypes are always checked, at trace time. Values cannot be, inside ``jit``;
    unchecked, a loss leaves out what it cannot use (a label outside ``[0, num_classes)``
    counts nothing) and propagates NaN like any arithmetic. In checked mode the losses also
    verify, with ``jax.experimental.checkify``, and raise naming the argument:

    * floating inputs hold no NaN, nor ±inf (except logits and log-probabilities, where
      −inf is a legitimate "impossible");
    * integer labels are class ids in ``[0, num_classes)``, ``ignore_index``, or masked by
      ``where`` (CTC: class ids other than ``blank`` within ``label_lengths``);
    * probabilities and (soft) targets lie in ``[0, 1]``;
    * lengths lie in ``[0, size of their axis]``.

    Masked entries are checked for NaN and inf too (fill padding with finite values), but
    not for their labels.

    The checks run inside the compiled function: the returned function is ``jax.jit``-ed
    and raises ``checkify.JaxRuntimeError`` after a failing call. Called inside a trace
    (your own ``jit``-ed step), it reports through ``checkify``: wrap that step in
    ``checkify.checkify`` and call ``error.throw()`` on its result.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> ce = jaxloss.checked(jaxloss.cross_entropy)
      >>> float(ce(jnp.zeros((2, 3)), jnp.array([0, 2])))  # log 3
      1.0986...
      >>> ce(jnp.zeros((2, 3)), jnp.array([0, 3]))
      Traceback (most recent call last):
      ...
      jax._src.checkify.JaxRuntimeError: `labels` must be class ids in [0, num_classes) ...

    Args:
      fn: the function to check; its static options go as keywords, as for ``fn``.

    Returns:
      A function with ``fn``'s signature and result.
    """

    def with_checks(*args, **kwargs):
        with _checks.checking():
            return fn(*args, **kwargs)

    checkified = checkify.checkify(with_checks, errors=checkify.user_checks)

    # Keyword options (reductions, modes) are static, as in the losses themselves.
    @functools.partial(jax.jit, static_argnames=("static_kwargs",))
    def compiled(args, static_kwargs, traced_kwargs):
        return checkified(*args, **dict(static_kwargs), **traced_kwargs)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        static = {k: v for k, v in kwargs.items() if _is_static(v)}
        traced = {k: v for k, v in kwargs.items() if k not in static}
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((args, traced))):
            error, out = checkified(*args, **kwargs)
            checkify.check_error(error)
            return out
        error, out = compiled(args, tuple(sorted(static.items())), traced)
        error.throw()
        return out

    return run


def _is_static(value: Any) -> bool:
    """Options that must stay Python values: strings, bools, ints, None, and tuples of them."""
    if isinstance(value, tuple):
        return all(_is_static(v) for v in value)
    return value is None or isinstance(value, (str, bool, int))
