"""A labelled batch's relations, shared by the losses over a whole batch.

Every such loss checks ``(embeddings [batch, dim], labels [batch])``, zeroes the rows
``where`` masks (the masking door), sees the global batch with ``axis_name``
(``all_gather``), and compares each local anchor with every row: ``[batch, global batch]``
masks of its positives and negatives, cosines or distances, and log-sum-exps over a mask
that stay finite (with zero gradients) for a row whose mask is empty.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _labels, _numerics
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName, gather_batch, global_sum


def kept_rows(
    where: ArrayLike | None, *arrays: jax.Array
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    """The ``[batch]`` kept mask (all True without ``where``), and ``arrays`` with their
    masked rows zeroed: a NaN there must not reach the other rows through the
    similarities or distances."""
    kept, arrays = masked_inputs(where, arrays[0].shape[:1], *arrays)
    return (jnp.ones(arrays[0].shape[:1], bool) if kept is None else kept), arrays


def labelled_batch(
    embeddings: ArrayLike,
    labels: ArrayLike,
    where: ArrayLike | None,
    axis_name: AxisName,
    name: str = "embeddings",
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """Checks a ``[batch, dim]`` batch (``embeddings`` is the argument ``name``); returns
    local and global views and this device's rows.

    Returns:
      ``(x, labels, kept, all_x, all_labels, all_kept, rows)``: the local embeddings,
      labels and kept mask, the same over the global batch, and the local rows' global
      indices ``[batch]``.
    """
    x = _checks.rows(embeddings, name)
    labels = _checks.integer_array(_labels.identities(labels), "labels")
    labels = _checks.per_row(labels, x.shape[0], "labels")
    kept, (x,) = kept_rows(where, x)
    all_x, offset = gather_batch(x, axis_name)
    all_labels, _ = gather_batch(labels, axis_name)
    all_kept, _ = gather_batch(kept, axis_name)
    rows = offset + jnp.arange(x.shape[0])
    return x, labels, kept, all_x, all_labels, all_kept, rows


def pair_masks(
    labels: jax.Array,
    kept: jax.Array,
    all_labels: jax.Array,
    all_kept: jax.Array,
    rows: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """``[batch, global batch]`` masks of each local anchor's positives (the other kept rows
    of its label: never itself) and negatives (the kept rows of other labels), from
    ``labelled_batch``'s views."""
    same = labels[:, None] == all_labels[None, :]
    others = kept[:, None] & all_kept[None, :]
    is_positive = others & same & (rows[:, None] != jnp.arange(all_labels.shape[0])[None, :])
    return is_positive, others & ~same


def unit_pairs(
    embeddings: ArrayLike, labels: ArrayLike, where: ArrayLike | None, axis_name: AxisName
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """A labelled batch checked and L2-normalized, and who is whose positive and negative.

    Returns:
      ``(u, all_u, labels, kept, is_positive, is_negative)``: the local unit embeddings
      ``[batch, dim]``, the global ones, the local labels and kept mask ``[batch]``, and
      the ``[batch, global batch]`` masks of ``pair_masks``.
    """
    x, labels, kept, all_x, all_labels, all_kept, rows = labelled_batch(
        embeddings, labels, where, axis_name
    )
    is_positive, is_negative = pair_masks(labels, kept, all_labels, all_kept, rows)
    u, all_u = _numerics.l2_normalize(x), _numerics.l2_normalize(all_x)
    return u, all_u, labels, kept, is_positive, is_negative


def cosine_pairs(
    embeddings: ArrayLike, labels: ArrayLike, where: ArrayLike | None, axis_name: AxisName
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(similarities, is_positive, is_negative, kept, nan_if_not_finite)``: cosines
    ``[batch, global batch]`` of the normalized embeddings, the pair masks, the kept rows, and
    a scalar 0, or NaN if an unmasked embedding of any device is not finite (masks drop NaN
    pairs from the value, while the NaN reaches every gradient through the matmul)."""
    u, all_u, _, kept, is_positive, is_negative = unit_pairs(embeddings, labels, where, axis_name)
    similarities = jnp.einsum("nd,md->nm", u, all_u, precision=_numerics.GRAM_PRECISION)
    # u is NaN exactly where x is (a zero row normalizes to 0, not NaN).
    nan_if_not_finite = global_sum(0 * jnp.sum(jnp.square(u)), axis_name)
    return similarities, is_positive, is_negative, kept, nan_if_not_finite


def pairwise_distances(x: jax.Array, y: jax.Array, squared: bool) -> tuple[jax.Array, jax.Array]:
    """``[n, m]`` Euclidean (or squared) distances (``_numerics.squared_distances``), and a
    scalar that is 0, or NaN if a row of ``x`` is not finite.

    The square root has a zero gradient at 0, so an anchor's distance to itself and
    identical embeddings stay finite.

    A NaN row reaches every gradient through the matrix (``0 · NaN`` in the backward pass of
    entries no triplet uses), but mining may drop it from the value: the scalar, NaN exactly
    then, lets the caller put it back.
    """
    squared_distances = _numerics.squared_distances(x, y)
    nan_if_not_finite = 0 * jnp.sum(jnp.sum(jnp.square(x), axis=1))
    if squared:
        return squared_distances, nan_if_not_finite
    return _numerics.safe_sqrt(squared_distances), nan_if_not_finite


def logsumexp_where(z: jax.Array, mask: jax.Array) -> jax.Array:
    """``[rows]`` log-sum-exp of each row of ``z`` over ``mask``; a row with nothing in its
    mask gets a finite (unused) value, so the caller's ``where`` sends no NaN backwards."""
    mask = mask | ~jnp.any(mask, axis=1, keepdims=True)
    return _numerics.logsumexp(jnp.where(mask, z, -jnp.inf))


def log1p_sum_exp(z: jax.Array, mask: jax.Array) -> jax.Array:
    """``log(1 + Σ_mask exp z)`` per row: a log-sum-exp with a leading 0 term, exactly 0
    (with zero gradients) for a row with nothing in its mask."""
    zero = jnp.zeros_like(z[:, :1])
    return _numerics.logsumexp(jnp.concatenate([zero, jnp.where(mask, z, -jnp.inf)], axis=1))


def softplus_over_negatives(
    logits: jax.Array, is_negative: jax.Array, targets: jax.Array
) -> jax.Array:
    """``[batch, global batch]`` ``log(1 + Σ_n exp(logits_an - targets_ap))`` over each row's
    negatives n: 0 for a row without negatives."""
    has_negative = jnp.any(is_negative, axis=1, keepdims=True)
    negatives = logsumexp_where(logits, is_negative)[:, None]
    return _numerics.softplus(jnp.where(has_negative, negatives, -jnp.inf) - targets)


def per_anchor(
    pair_losses: jax.Array,
    reduction: str,
    counted: jax.Array,
    mean_weights: jax.Array | None,
    axis_name: AxisName,
) -> jax.Array:
    """``[anchor, positive]`` losses reduced: per anchor for ``"none"``, else over pairs."""
    if reduction == "none":
        return jnp.sum(jnp.where(counted, pair_losses, 0), axis=1)
    return reduce_loss(
        pair_losses, reduction, where=counted, mean_weights=mean_weights, axis_name=axis_name
    )
