"""The inputs of a ranking loss: lists of scored items, their masks and weights.

Lists lie on the last axis of ``scores`` and ``labels``; the leading axes index the lists.
Two masks meet here. ``where`` masks whole lists (the ``reduction="none"`` shape, as every
jaxloss loss); ``item_mask`` masks items inside a list (optax's and rax's ``where``). A
list counts when ``where`` keeps it and it holds a valid item. Everything that does not
count is zeroed before any arithmetic, so padding may hold anything.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checked, _checks
from jaxloss._reduce import masked_inputs


class Lists(NamedTuple):
    """Validated ranking inputs, broadcast to ``[..., list_size]``, padding zeroed.

    ``mask`` is the ``[...]`` mask of the lists that count (None: all of them), ``items``
    the ``[..., list_size]`` mask of the items that count (None: all of them).
    """

    scores: jax.Array
    labels: jax.Array
    weights: jax.Array | None
    mask: jax.Array | None
    items: jax.Array | None


def _check_where(
    where: ArrayLike | None, shape: tuple[int, ...], items_shape: tuple[int, ...]
) -> None:
    """A ``where`` of the items' shape is optax's item mask: say so in the error."""
    try:
        _checks.mask(where, shape)
    except ValueError:
        if where is not None and np.shape(where) == items_shape:
            raise ValueError(
                f"`where` masks whole lists: its shape must broadcast to {shape}, got "
                f"{items_shape}. To mask items inside the lists (optax's and rax's "
                "`where`), pass `item_mask`."
            ) from None
        raise


def _item_mask(item_mask: ArrayLike, shape: tuple[int, ...]) -> jax.Array:
    item_mask = jnp.asarray(item_mask)
    if item_mask.dtype != jnp.bool_:
        raise TypeError(f"`item_mask` must be a boolean mask, got dtype {item_mask.dtype}.")
    return _checks.broadcast_to(item_mask, shape, "item_mask", "`scores` and `labels`")


def lists(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None,
    item_mask: ArrayLike | None,
    where: ArrayLike | None,
    allow_inf: bool = False,
) -> Lists:
    """``scores`` and ``labels`` (and per-item ``weights``) through the masking door.

    Float ``scores`` (at least float32), ``labels`` (integers accepted) and ``weights`` cast
    to the scores' dtype and broadcast together; masked lists and masked items zeroed.
    ``allow_inf``: −inf scores are legitimate (a softmax over the list).
    """
    scores = _checks.float_array(scores, "scores", allow_inf=allow_inf)
    labels = _checks.float_array(labels, "labels", allow_int=True)
    shape = _checks.broadcast_shapes(scores=scores, labels=labels)
    if len(shape) < 1:
        raise ValueError("`scores` and `labels` need a list axis [..., list_size], got scalars.")
    arrays = [jnp.broadcast_to(scores, shape), jnp.broadcast_to(labels.astype(scores.dtype), shape)]
    if weights is not None:
        weights = _checks.float_array(weights, "weights", allow_int=True).astype(scores.dtype)
        arrays.append(_checks.broadcast_to(weights, shape, "weights", "`scores` and `labels`"))
    items = None if item_mask is None else _item_mask(item_mask, shape)
    list_shape = shape[:-1]
    _check_where(where, list_shape, shape)
    counted = None if items is None else jnp.any(items, axis=-1)
    mask, zeroed = masked_inputs(where, list_shape, *arrays, counted=counted)
    if items is not None:
        if mask is not None:
            items = items & mask[..., None]
        zeroed = tuple(jnp.where(items, a, 0) for a in zeroed)
    scores, labels, *rest = zeroed
    # Relevance grades are >= 0 (a TF-Ranking -1 pads an item: mask it with `item_mask`);
    # the masked items were zeroed above, so only the counted ones are checked.
    _checked.value_check(
        labels >= 0, "`labels` must be relevance grades >= 0 (mask padding with `item_mask`)."
    )
    return Lists(scores, labels, rest[0] if rest else None, mask, items)
