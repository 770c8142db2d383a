"""Label rules: which integer labels count, compared in a dtype that cannot wrap.

Every loss with integer labels (class ids, token ids, CTC targets, label maps) decides
which ones count through ``valid_class_ids``: a label outside ``[0, num_classes)`` is left
out (loss 0, not counted, zero gradient), never wrapped or clamped by a gather.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


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
    """Where labels count: class ids in ``[0, num_classes)`` other than ``ignore_index``."""
    valid = valid_class_ids(labels, num_classes)
    if ignore_index is None:
        return valid
    return valid & (widened(labels) != ignore_index)
