"""Trace-time checks of shapes, dtypes and options; the only module that imports chex.

Every check runs while JAX traces a loss, on static shapes and dtypes, so it costs nothing
after compilation and works the same under ``jit``, ``vmap`` and ``grad``. Errors are
``ValueError`` (a shape or a value) or ``TypeError`` (a dtype), and always name the argument
and the shapes involved. Checks are written on axes and suffixes, never on an exact rank, so
a loss still accepts the extra leading axes that ``vmap`` strips and users add.

Value checks (NaN, labels out of range) are apart, in ``_checked``: they exist only in
checked mode. ``float_array`` and ``lengths`` call them on the arrays they convert.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss._checked import active, finite, value_check
from jaxloss._deprecation import outside_jaxloss
from jaxloss._labels import as_array, wide_host_integers, widened

REDUCTIONS = ("mean", "sum", "none")


def _shape_of(x: ArrayLike) -> tuple[int, ...]:
    return tuple(np.shape(x))


def float_array(
    x: ArrayLike, name: str, *, allow_int: bool = False, allow_inf: bool = False
) -> jnp.ndarray:
    """Returns ``x`` as a floating array of at least float32 precision.

    Half-precision inputs (float16, bfloat16) are upcast to float32 so every loss computes
    and returns float32; float64 stays float64 when x64 is enabled. In checked mode, NaN
    (and ±inf, unless ``allow_inf``: logits and log-probabilities may hold −inf) is an
    error naming ``name``.

    Raises:
      TypeError: if ``x`` is not floating point (integers and booleans are accepted and cast
        when ``allow_int``, as for regression targets).
    """
    if allow_int and wide_host_integers(x):
        x = np.asarray(x, np.float32)  # JAX would wrap int64 to int32 first (x64 off)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        if not allow_int or not (
            jnp.issubdtype(x.dtype, jnp.integer) or jnp.issubdtype(x.dtype, jnp.bool_)
        ):
            raise TypeError(f"`{name}` must be a floating-point array, got dtype {x.dtype}.")
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    finite(x, name, allow_inf=allow_inf)
    return x


def integer_array(x: ArrayLike, name: str, what: str = "class ids") -> jnp.ndarray:
    """``x`` as a widened integer array (``_labels.widened``), or ``TypeError`` naming ``name``
    and ``what`` it holds."""
    x = as_array(x)
    try:
        chex.assert_type(x, int)
    except AssertionError:
        raise TypeError(f"`{name}` must hold integer {what}, got dtype {x.dtype}.") from None
    return widened(x)


def broadcast_shapes(**arrays: ArrayLike) -> tuple[int, ...]:
    """The broadcast shape of named arrays, or a ValueError naming each with its shape.

    The broadcast shape must be the shape of one of them: inputs that broadcast only by
    expanding every one (a ``[B, 1]`` against a ``[B]`` makes ``[B, B]``, every prediction
    against every target) are almost always a mistake that silently gives a loss of the
    wrong pairs. An outer product that is meant can be broadcast explicitly first
    (``jnp.broadcast_arrays``).
    """
    return _broadcast(arrays, outer_product_warns=False)


def broadcast_shapes_as_torch(**arrays: ArrayLike) -> tuple[int, ...]:
    """:func:`broadcast_shapes` that computes an outer product with a ``UserWarning``, as
    torch's regression losses do (their contract is NumPy's broadcasting)."""
    return _broadcast(arrays, outer_product_warns=True)


def _broadcast(arrays: dict[str, ArrayLike], outer_product_warns: bool) -> tuple[int, ...]:
    shapes = {name: tuple(_shape_of(a)) for name, a in arrays.items()}
    described = ", ".join(f"`{n}` {s}" for n, s in shapes.items())
    try:
        shape = tuple(np.broadcast_shapes(*shapes.values()))
    except ValueError:
        raise ValueError(f"Shapes do not broadcast together: {described}.") from None
    if shapes and shape not in shapes.values():
        message = (
            f"Shapes {described} broadcast to {shape}, the shape of none of them: every input "
            "is expanded (a [B, 1] against a [B] pairs every entry of one with every entry "
            "of the other). Give them matching shapes, or broadcast them explicitly "
            "(jnp.broadcast_arrays) if that outer product is meant."
        )
        if not outer_product_warns:
            raise ValueError(message)
        warnings.warn(message, UserWarning, stacklevel=outside_jaxloss())
    return shape


def broadcast_floats(
    *, allow_inf: bool | Sequence[str] = False, **arrays: ArrayLike
) -> tuple[tuple[jnp.ndarray, ...], tuple[int, ...]]:
    """Named arrays as floats (see ``float_array``) broadcast together, and that shape.

    ``allow_inf``: True, or the names of the arrays, that may hold −inf in checked mode
    (log-probabilities: −inf is a legitimate "impossible")."""
    shape = broadcast_shapes(**arrays)
    floats = tuple(
        jnp.broadcast_to(
            float_array(a, n, allow_inf=allow_inf is True or n in (allow_inf or ())), shape
        )
        for n, a in arrays.items()
    )
    return floats, shape


def leading_axes(x: ArrayLike, name: str, shape: Sequence[int], target: str) -> ArrayLike:
    """``x`` with trailing axes of 1 where it has fewer axes than ``shape`` and its shape is
    ``shape``'s leading axes: a ``[batch]`` mask or value against ``[batch, time]`` or
    ``[batch, height, width]`` is one per row, spread over the rest.

    NumPy's broadcasting would align it with the *trailing* axes instead: refused where they
    differ (``batch != width``), silently one per position where they agree. Where ``x``
    matches both the leading and the trailing axes the intent cannot be read: ValueError
    asking for the explicit shape. Any other shape passes unchanged (NumPy's broadcasting,
    e.g. a ``[time]`` mask of positions against ``[batch, time]``).
    """
    own, shape = _shape_of(x), tuple(shape)
    extra = len(shape) - len(own)
    if not own or extra <= 0 or own != shape[: len(own)]:
        return x
    if own == shape[extra:]:
        raise ValueError(
            f"`{name}` of shape {own} against {target} of shape {shape} matches both its "
            f"leading and its trailing axes: give {(*own, *(1,) * extra)} for one value per "
            f"leading entry (e.g. per row), {(*(1,) * extra, *own)} for the trailing ones."
        )
    return jnp.reshape(jnp.asarray(x), own + (1,) * extra)


def broadcast_to(x: jnp.ndarray, shape: Sequence[int], name: str, target: str) -> jnp.ndarray:
    """Broadcasts ``x`` to ``shape`` (the shape of ``target``), naming both on failure."""
    shape = tuple(shape)
    try:
        np.broadcast_shapes(_shape_of(x), shape)
        return jnp.broadcast_to(x, shape)
    except ValueError:
        raise ValueError(
            f"`{name}` of shape {_shape_of(x)} does not broadcast to the shape {shape} of {target}."
        ) from None


def equal_shapes(**arrays: ArrayLike) -> None:
    """Raises ValueError unless all named arrays have the same shape."""
    try:
        chex.assert_equal_shape(list(arrays.values()))
    except AssertionError:
        described = ", ".join(f"`{n}` {_shape_of(a)}" for n, a in arrays.items())
        raise ValueError(f"Expected equal shapes, got {described}.") from None


def class_axis(axis: int, ndim: int, name: str) -> int:
    """Normalizes a class axis of an array of rank ``ndim``."""
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"`axis` must be a Python int, got {type(axis).__name__}.")
    if not -ndim <= axis < ndim:
        raise ValueError(f"`axis`={axis} is out of range for `{name}` of rank {ndim}.")
    return int(axis) % ndim


def vector_of_length(x: ArrayLike, length: int, name: str, what: str) -> jnp.ndarray:
    """Checks that ``x`` is a float vector of ``length`` entries (one per class)."""
    x = float_array(x, name, allow_int=True)
    if x.shape != (length,):
        raise ValueError(f"`{name}` must have shape ({length},) ({what}), got {x.shape}.")
    return x


def mask(where: ArrayLike | None, shape: Sequence[int]) -> jnp.ndarray | None:
    """Validates a ``where`` mask and broadcasts it to the per-example loss shape: a mask of
    the leading axes only (``[batch]`` against ``[batch, time]``) masks whole rows
    (:func:`leading_axes`), any other as NumPy broadcasts."""
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"`where` must be a boolean mask, got dtype {where.dtype}.")
    target = "the per-example loss (reduction='none')"
    where = jnp.asarray(leading_axes(where, "where", shape, target))
    return broadcast_to(where, shape, "where", target)


def choice(value: str, allowed: Sequence[str], name: str) -> str:
    """Raises ValueError unless the static option ``name`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {tuple(allowed)}, got {value!r}.")
    return value


def reduction(value: str, allowed: Sequence[str] = REDUCTIONS) -> str:
    """Raises ValueError unless ``value`` is one of the ``allowed`` reductions."""
    return choice(value, allowed, "reduction")


def static_index(value: int, name: str) -> int:
    """``value`` as a Python int, or a TypeError naming ``name``: a static class id (an int,
    NumPy's too, or a concrete integer scalar), never a float, a bool or a traced value, which
    would index or compare as something else (``blank=0.5`` decoded every blank as a token)."""
    if isinstance(value, (bool, np.bool_)) or getattr(value, "dtype", None) == np.bool_:
        raise TypeError(f"`{name}` must be an int (a class id), got {value!r}.")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"`{name}` must be a static int (a class id), got {value!r}.") from None


def static_int(value: int, name: str, *, low: int = 1) -> int:
    """A static count (shapes or loop lengths depend on it) as a Python int: an int, NumPy's
    too, at least ``low`` (1: positive, 0: non-negative), never a bool or a float; else a
    ValueError naming ``name``."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or (value < low)
    ):
        kind = "positive" if low == 1 else "non-negative" if low == 0 else f">= {low}"
        static = (
            " (a static option: an array, traced or injected by compose.inject_hyperparams,"
            " cannot set it; pass a Python int)"
            if isinstance(value, (jax.Array, np.ndarray))
            else ""
        )
        raise ValueError(f"`{name}` must be a {kind} int, got {value!r}{static}.")
    return int(value)


def chunk_size(value: int | None) -> int | None:
    """Raises ValueError unless the static ``chunk_size`` is None or a positive int."""
    if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
        raise ValueError(f"`chunk_size` must be a positive int or None, got {value!r}.")
    return value


def per_row(value: jnp.ndarray, batch: int, name: str) -> jnp.ndarray:
    """Raises ValueError unless ``value`` has shape ``[batch]`` (one entry per row)."""
    if value.shape != (batch,):
        raise ValueError(f"`{name}` must have shape ({batch},), got {value.shape}.")
    return value


def rows(x: ArrayLike, name: str) -> jnp.ndarray:
    """A float ``[batch, dim]`` array (one vector per row), or ValueError naming ``name``."""
    x = float_array(x, name)
    if x.ndim != 2:
        raise ValueError(f"`{name}` must be [batch, dim], got shape {x.shape}.")
    return x


def in_range(
    value: ArrayLike | None,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> ArrayLike | None:
    """Raises ValueError if a concrete hyperparameter lies outside its domain (None passes).

    Checks Python and NumPy numbers (the values users type, where torch raises too) and
    concrete arrays, every entry (a per-example margin, a value of
    ``compose.inject_hyperparams`` called eagerly). A traced value passes, as it must for
    schedules inside ``jit``, and is checked in checked mode (``jaxloss.checked``).
    ``low_open`` and ``high_open`` exclude ``low`` and ``high`` themselves (``delta > 0``).
    NaN is outside every domain.
    """
    bounds = (f"({low}" if low_open else f"[{low}" if low is not None else "(-inf") + (
        (f", {high})" if high_open else f", {high}]") if high is not None else ", inf)"
    )
    message = f"`{name}` must lie in {bounds}"
    if value is None or isinstance(value, bool):
        return value
    entries = _concrete(value)
    if entries is not None:
        if not np.issubdtype(entries.dtype, np.number):
            return value
        entries = entries.ravel()
        wide = entries.astype(np.float64)
        outside = np.isnan(wide)
        if low is not None:
            outside |= wide <= low if low_open else wide < low
        if high is not None:
            outside |= wide >= high if high_open else wide > high
        if outside.any():
            if isinstance(value, (int, float, np.number)):
                got = repr(value)
            else:
                entry = "" if np.ndim(value) == 0 else " (an entry of the array)"
                got = f"{entries[outside][0]!s}{entry}"
            raise ValueError(f"{message}, got {got}.")
        return value
    if not active():
        return value
    array = jnp.asarray(value)
    ok = ~jnp.isnan(array)
    if low is not None:
        ok &= array > low if low_open else array >= low
    if high is not None:
        ok &= array < high if high_open else array <= high
    value_check(ok, f"{message}.")
    return value


def _concrete(value: ArrayLike) -> np.ndarray | None:
    """``value`` as a NumPy array, or None where it is traced."""
    try:
        return np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def concrete_number(value: ArrayLike) -> float | None:
    """A scalar hyperparameter's value when it is concrete (not traced), else None."""
    entries = _concrete(value) if np.ndim(value) == 0 else None
    return None if entries is None else float(entries)


def unused_is_zero(value: ArrayLike, message: str) -> None:
    """A hyperparameter that the chosen variant does not use must be 0.

    A nonzero Python or NumPy number raises ValueError (``message``, then the value); an
    array, traced or not, is accepted (unlike :func:`in_range`, which checks a concrete
    one), so that a step which carries every hyperparameter as an array runs every variant,
    and it is checked to be 0 in checked mode (``jaxloss.checked``).
    """
    if isinstance(value, (int, float, np.number)):
        if value != 0:
            raise ValueError(f"{message}, got {value!r}.")
    elif active():
        value_check(jnp.asarray(value) == 0, f"{message}.")


def is_static_zero(value: ArrayLike) -> bool:
    """Whether a hyperparameter is a concrete 0, so its work can be skipped.

    A traced value always takes the general path (it may be nonzero at run time).
    """
    return isinstance(value, (int, float)) and value == 0


def rows_and_classes(
    x: ArrayLike,
    w: ArrayLike,
    labels: ArrayLike,
    x_name: str,
    w_name: str,
    *,
    class_rank: int = 2,
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Float ``x`` ``[batch, dim]``, float ``w`` ``[num_classes, dim]``, int ``labels``
    ``[batch]``: the inputs of a softmax head over class rows. ``class_rank`` 3 asks for
    ``w`` ``[num_classes, sub_centers, dim]``."""
    x = float_array(x, x_name)
    w = float_array(w, w_name)
    labels = integer_array(labels, "labels")
    if x.ndim != 2 or w.ndim != class_rank or x.shape[1] != w.shape[-1]:
        classes = "[num_classes, dim]" if class_rank == 2 else "[num_classes, sub_centers, dim]"
        raise ValueError(
            f"`{x_name}` must be [batch, dim] and `{w_name}` {classes} with the same "
            f"dim, got {x.shape} and {w.shape}."
        )
    return x, w, per_row(labels, x.shape[0], "labels")


def sequence_logits(logits: ArrayLike) -> jnp.ndarray:
    """Float ``logits`` of shape ``[batch, time, num_classes]``."""
    logits = float_array(logits, "logits", allow_inf=True)
    if logits.ndim != 3:
        raise ValueError(
            f"`logits` must have shape [batch, time, num_classes], got {logits.shape}."
        )
    return logits


def lengths(value: ArrayLike | None, size: int, batch: int, name: str) -> jnp.ndarray:
    """Per-sequence lengths ``[batch]`` as int32; all ``size`` if None.

    Concrete lengths outside ``[0, size]`` raise ValueError (as torch's losses do), traced ones
    in checked mode; otherwise a traced length is clipped to ``[0, size]``.
    """
    if value is None:
        return jnp.full((batch,), size, jnp.int32)
    value = per_row(integer_array(value, name, "lengths"), batch, name)
    in_range(value, name, low=0, high=size)
    return jnp.clip(value.astype(jnp.int32), 0, size)


def label_sequences(labels: ArrayLike, batch: int) -> jnp.ndarray:
    """Integer ``labels`` of shape ``[batch, max_label_length]`` (padded label sequences)."""
    labels = integer_array(labels, "labels")
    if labels.ndim != 2 or labels.shape[0] != batch:
        raise ValueError(
            f"`labels` must have shape [batch={batch}, max_label_length], got {labels.shape}."
        )
    return labels
