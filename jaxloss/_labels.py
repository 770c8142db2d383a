"""Label rules: which integer labels count, compared in a dtype that cannot wrap.

Every loss with integer labels (class ids, token ids, CTC targets, label maps) decides
which ones count through ``valid_class_ids``: a label outside ``[0, num_classes)`` is left
out (loss 0, not counted, zero gradient), never wrapped or clamped by a gather.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

_INT32 = np.iinfo(np.int32)


def as_array(x: ArrayLike) -> jax.Array:
    """``jnp.asarray(x)``, except that 64-bit host integers past int32 saturate, not wrap.

    With x64 off, JAX converts a NumPy int64 or uint64 array (NumPy's default integers) to
    int32 modulo 2^32, so a label 2^32 + 1 would become class 1. Saturated to
    ``[-2^31, 2^31 - 1]`` it stays outside ``[0, num_classes)`` and is excluded, as every
    other out-of-range label. (Python ints past int32 already raise in JAX.)
    """
    if wide_host_integers(x):
        assert isinstance(x, (np.ndarray, np.integer))
        low = _INT32.min if x.dtype.kind == "i" else 0
        x = np.clip(x, low, _INT32.max).astype(np.int32)
    return jnp.asarray(x)


def identities(x: ArrayLike) -> ArrayLike:
    """Labels compared only for equality (the pairwise losses' identities), with NumPy
    64-bit values past int32 mapped to distinct int32 values, not saturated.

    :func:`as_array` would make every id past 2^31 - 1 the same one (a batch of 10-digit
    person or product ids then holds one class and a supervised contrastive loss reads
    0). Each distinct such id gets its own value, the lowest int32 values not in use (from
    -2^31 up), so the ids within int32 keep theirs: class ids that index something
    (``margin_loss``'s per-class β) stay right, and the mapped ones stay outside
    ``[0, num_classes)``. Other inputs (traced ones among them: under ``jit`` JAX has
    converted them already) pass unchanged.
    """
    if not wide_host_integers(x):
        return x
    values = np.asarray(x)
    inside = (values >= _INT32.min) & (values <= _INT32.max)
    if inside.all():
        return values.astype(np.int32)
    out = np.where(inside, values, 0).astype(np.int32)
    used = set(np.unique(values[inside]).tolist())
    free = _INT32.min
    for value in np.unique(values[~inside]):
        while free in used:
            free += 1
        out[values == value] = free
        free += 1
    return out


def wide_host_integers(x: ArrayLike) -> bool:
    """Whether ``x`` is a NumPy 64-bit integer array or scalar that JAX would wrap to int32
    (x64 off)."""
    return (
        isinstance(x, (np.ndarray, np.integer))
        and x.dtype.kind in "iu"
        and x.dtype.itemsize == 8
        and jax.dtypes.canonicalize_dtype(x.dtype) != x.dtype
    )


def widened(x: jnp.ndarray) -> jnp.ndarray:
    """Integers as a signed type of at least 32 bits: the one rule before any comparison.

    Compared in their own dtype, Python ints wrap: for uint8 labels ``num_classes = 256``
    becomes 0 and ``ignore_index = -100`` becomes 156. int32 (int64 with x64) holds every
    narrower integer exactly; a uint32 label past 2^31 becomes negative, out of range either
    way.
    """
    if jnp.issubdtype(x.dtype, jnp.signedinteger) and x.dtype.itemsize >= 4:
        return x
    return x.astype(jnp.int64 if x.dtype.itemsize == 8 else jnp.int32)


def valid_class_ids(labels: jax.Array, num_classes: int) -> jax.Array:
    """Where integer labels are class ids in ``[0, num_classes)``.

    Every loss excludes the others (loss 0, not counted, zero gradient) instead of letting
    a gather wrap or clamp them silently. The labels are widened first (``widened``):
    compared in their own dtype, ``num_classes = 256`` would wrap to 0 for uint8 labels.
    """
    labels = widened(labels)
    return (labels >= 0) & (labels < num_classes)


def counted_labels(
    labels: jax.Array, num_classes: int, ignore_index: int | None = None
) -> jax.Array:
    """Where labels count: class ids in ``[0, num_classes)`` other than ``ignore_index``.

    ``ignore_index`` is None, an int (NumPy's too) or an integer array (traced in a schedule):
    anything else is a TypeError, where a string or a float (``"0"`` from a command line
    without ``type=int``, ``0.5``) equalled no label and left nothing out, and ``True`` left
    out class 1."""
    valid = valid_class_ids(labels, num_classes)
    if ignore_index is None:
        return valid
    integer = isinstance(ignore_index, (int, np.integer)) or (
        hasattr(ignore_index, "dtype") and jnp.issubdtype(ignore_index.dtype, jnp.integer)
    )
    if not integer or isinstance(ignore_index, (bool, np.bool_)):
        raise TypeError(
            f"`ignore_index` must be an int (a label value to leave out) or None, got "
            f"{ignore_index!r}."
        )
    return valid & (widened(labels) != ignore_index)
