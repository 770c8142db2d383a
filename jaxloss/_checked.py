"""Checked mode: value errors (NaN, labels out of range, ...) raised, with ``checkify``.

``checked`` turns the mode on; the value checks below trace only inside it, so outside
checked mode they cost nothing. The losses call them (and ``_checks.float_array`` calls
``finite`` on every float input it converts).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify
from jax.typing import ArrayLike

from jaxloss._labels import widened

P = ParamSpec("P")
R = TypeVar("R")


def checked(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` (any jaxloss loss, or a function calling some) with its value checks on.

    Shapes and dtypes are always checked, at trace time. Values cannot be, inside ``jit``;
    unchecked, a loss leaves out what it cannot use (a label outside ``[0, num_classes)``
    counts nothing) and propagates NaN like any arithmetic. In checked mode the losses also
    verify, with ``jax.experimental.checkify``, and raise naming the argument:

    * floating inputs hold no NaN, nor ±inf (except logits and log-probabilities, where
      −inf is a legitimate "impossible");
    * integer labels are class ids in ``[0, num_classes)``, ``ignore_index``, or masked by
      ``where`` (CTC: class ids other than ``blank`` within ``label_lengths``); the dense
      losses' label maps excepted, where a label outside the classes is a "void" pixel by
      design (VOC's 255) and is not an error;
    * probabilities and (soft) targets lie in ``[0, 1]``; relevance grades (the ranking
      losses) are ``>= 0`` where ``item_mask`` counts them;
    * lengths lie in ``[0, size of their axis]``;
    * traced hyperparameters lie in their domain (a concrete one is checked outside this
      mode too).

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

    ``fn`` is compiled, so what it closes over is a constant of the compiled function, as
    with any ``jax.jit``: pass arrays that change (parameters) as arguments. A flax
    ``nnx.Module`` (the heads of :mod:`jaxloss.nn`) may be ``fn`` itself: its parameters and
    statistics go in at every call, and the statistics it updates (running t, norms,
    centers) are written back to it after the checks pass, not after a failing call.

    Args:
      fn: the function or module to check; its static options (strings, booleans,
        integers, NumPy's too) go as keywords, as for ``fn``.

    Returns:
      A function with ``fn``'s signature and result.
    """

    module = _nnx_module(fn)
    if module is not None:
        return cast(Callable[P, R], _checked_module(module))

    def with_checks(*args: Any, **kwargs: Any) -> Any:
        with checking():
            return fn(*args, **kwargs)

    checkified = checkify.checkify(with_checks, errors=checkify.user_checks)

    # Keyword options (reductions, modes) are static, as in the losses themselves.
    @functools.partial(jax.jit, static_argnames=("static_kwargs",))
    def compiled(
        args: tuple[Any, ...],
        static_kwargs: tuple[tuple[str, Any], ...],
        traced_kwargs: dict[str, Any],
    ) -> Any:
        return checkified(*args, **dict(static_kwargs), **traced_kwargs)

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        static, traced = _split_options(kwargs)
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((args, traced))):
            error, out = checkified(*args, **static, **traced)
            checkify.check_error(error)
            return out
        error, out = compiled(args, tuple(sorted(static.items())), traced)
        error.throw()
        return out

    return run


def _nnx_module(fn: Any) -> Any:
    """``fn`` if it is a flax ``nnx.Module`` (flax imported already), else None."""
    nnx = sys.modules.get("flax.nnx")
    return fn if nnx is not None and isinstance(fn, nnx.Module) else None


def _checked_module(module: Any) -> Callable[..., Any]:
    """``checked`` of an ``nnx.Module``: its current state goes in at every call (never a
    constant of the compiled function), and the state it leaves (running statistics,
    updated centers) is written back to it after the checks pass."""
    from flax import nnx

    compiled: list[tuple[Any, Callable[..., Any]]] = []  # per graph structure (unhashable)

    def functional(graphdef: Any) -> Callable[..., Any]:
        def call(state: Any, args: tuple[Any, ...], static: tuple, traced: dict) -> Any:
            # Variables rebuilt in this trace (checkify's): a module it may mutate.
            inner = nnx.merge(graphdef, jax.tree.map(lambda leaf: leaf, state))
            with checking():
                out = inner(*args, **dict(static), **traced)
            return out, nnx.state(inner)

        return checkify.checkify(call, errors=checkify.user_checks)

    def run(*args: Any, **kwargs: Any) -> Any:
        graphdef, state = nnx.split(module)
        static_kwargs, traced = _split_options(kwargs)
        static = tuple(sorted(static_kwargs.items()))
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((state, args))):
            # Inside the caller's trace (``nnx.jit``), whose checkify gathers the checks;
            # the module mutates itself there as it would unchecked.
            with checking():
                return module(*args, **static_kwargs, **traced)
        known = [c for g, c in compiled if g == graphdef]
        if not known:
            known = [jax.jit(functional(graphdef), static_argnums=(2,))]
            compiled.append((graphdef, known[0]))
        error, (out, new_state) = known[0](state, args, static, traced)
        error.throw()
        nnx.update(module, new_state)
        return out

    run.__doc__ = type(module).__call__.__doc__
    return run


def _split_options(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword options as (static, traced): NumPy integers and booleans as Python ones."""
    static = {k: _as_python(v) for k, v in kwargs.items() if _is_static(v)}
    return static, {k: v for k, v in kwargs.items() if k not in static}


def _as_python(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_as_python(v) for v in value)
    return value.item() if isinstance(value, (np.integer, np.bool_)) else value


def _is_static(value: Any) -> bool:
    """Options that must stay Python values: strings, bools, ints (NumPy's too), None, and
    tuples of them."""
    if isinstance(value, tuple):
        return all(_is_static(v) for v in value)
    return value is None or isinstance(value, (str, bool, int, np.integer, np.bool_))


# Value checks (NaN, labels out of range, ...) cost a reduction per input and need
# checkify, so they are traced only inside ``jaxloss.checked`` (see ``checking``).
_CHECKING = contextvars.ContextVar("jaxloss_checking", default=False)


@contextlib.contextmanager
def checking() -> Iterator[None]:
    """Within this context, losses trace their value checks (``checkify.check``)."""
    token = _CHECKING.set(True)
    try:
        yield
    finally:
        _CHECKING.reset(token)


def active() -> bool:
    """Whether value checks trace here (inside ``jaxloss.checked``)."""
    return _CHECKING.get()


def value_check(ok: ArrayLike, message: str) -> None:
    """``checkify.check(all(ok), message)`` inside ``jaxloss.checked``; nothing otherwise.

    The message names the argument; braces are escaped (checkify formats messages).
    """
    if _CHECKING.get():
        checkify.check(jnp.all(ok), message.replace("{", "{{").replace("}", "}}"))


def finite(
    x: jnp.ndarray, name: str, *, allow_inf: bool = False, where: jnp.ndarray | None = None
) -> None:
    """Value check: no NaN nor +inf in ``x``, nor −inf unless ``allow_inf``.

    ``allow_inf`` is for logits and log-probabilities, where −inf is a legitimate
    "impossible"; +inf is never one. ``where`` (broadcast against ``x``'s leading axes)
    limits the check to the entries a loss reads (padding past a length may hold anything).
    """
    if not _CHECKING.get():
        return
    ok = ~jnp.isnan(x) & (x != jnp.inf) if allow_inf else jnp.isfinite(x)
    if where is not None:
        ok = ok | ~where.reshape(where.shape + (1,) * (x.ndim - where.ndim))
    value_check(ok, f"`{name}` holds NaN or {'+inf' if allow_inf else 'inf'}.")


def probabilities(x: jnp.ndarray, name: str) -> None:
    """Value check: every entry of ``x`` lies in [0, 1]."""
    value_check((x >= 0) & (x <= 1), f"`{name}` must hold probabilities in [0, 1].")


def class_ids(
    labels: jnp.ndarray,
    num_classes: int,
    name: str = "labels",
    *,
    ignore_index: int | None = None,
    where: jnp.ndarray | None = None,
) -> None:
    """Value check: labels are class ids in ``[0, num_classes)``, ``ignore_index``, or masked.

    Unchecked, such labels are left out of the loss (never wrapped); checked, they are an
    error, since a label out of range is more often a bug than a choice.
    """
    labels = widened(labels)
    ok = (labels >= 0) & (labels < num_classes)
    if ignore_index is not None:
        ok = ok | (labels == ignore_index)
    if where is not None:
        ok = ok | ~jnp.broadcast_to(where, labels.shape)
    message = f"`{name}` must be class ids in [0, num_classes)"
    if ignore_index is not None:
        message += f" or ignore_index {ignore_index}"
    value_check(ok, message + " (masked entries excepted).")


def sequence_labels(
    labels: jnp.ndarray,
    label_lengths: jnp.ndarray,
    num_classes: int,
    blank: int,
    kept: jnp.ndarray | None = None,
) -> None:
    """Value check: within ``label_lengths`` (of the ``kept`` ``[batch]`` sequences), every
    label of a CTC or RNN-T sequence is a class other than the blank."""
    in_sequence = jnp.arange(labels.shape[1])[None, :] < label_lengths[:, None]
    if kept is not None:
        in_sequence = in_sequence & kept[:, None]
    value_check(
        ~in_sequence | ((labels >= 0) & (labels < num_classes) & (labels != blank)),
        f"`labels` must be class ids in [0, {num_classes}) other than blank={blank} "
        "within `label_lengths`" + (" (masked sequences excepted)." if kept is not None else "."),
    )
