"""Reduction and masking: ``reduce_loss``, ``where`` masks, weights, and the masking door.

Every loss computes its per-example values (the ``reduction="none"`` shape) and hands them
here. The rules, shared by the whole library:

* ``"none"`` returns the per-example values, masked entries set to 0.
* ``"sum"`` adds the unmasked entries.
* ``"mean"`` divides that sum by the number of unmasked entries, or, for torch's weighted
  mean, by the sum of their ``mean_weights`` (class weights of the targets). A mean over no
  entries is 0 with zero gradients, never NaN.
* ``"batchmean"`` (``kl_div``) divides the sum by the number of batch rows (leading axis)
  that hold an unmasked entry.
* With ``axis_name`` the sum and the count are each summed over the named mapped axis before
  dividing, so the result equals the single-device value on the whole batch even when
  devices hold different numbers of valid entries (a mean of per-device means does not).

``masked_inputs`` is the masking door: every loss passes ``where`` (and the entries its own
rules leave out) through it before any arithmetic on its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from jaxloss import _checks
from jaxloss._sharding import AxisName, global_sum


def zero_masked(mask: jax.Array | None, *arrays: jax.Array) -> tuple[jax.Array, ...]:
    """``arrays`` with their masked entries replaced by 0, *before* any computation.

    ``reduce_loss`` keeps masked entries out of the value; their gradient is 0 only if
    every operation on them has a finite derivative there (``0 · inf`` is NaN). A loss
    whose operations can be infinite at legitimate padding values (``-inf`` logits,
    a huge log-variance) zeroes its masked inputs first. ``mask`` broadcasts against the
    leading axes of each array.
    """
    if mask is None:
        return arrays
    return tuple(
        jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - mask.ndim)), a, 0) for a in arrays
    )


@overload
def masked_inputs(
    where: ArrayLike | None,
    shape: Sequence[int],
    *arrays: jax.Array,
    counted: jax.Array,
) -> tuple[jax.Array, tuple[jax.Array, ...]]: ...


@overload
def masked_inputs(
    where: ArrayLike | None,
    shape: Sequence[int],
    *arrays: jax.Array,
    counted: None = None,
) -> tuple[jax.Array | None, tuple[jax.Array, ...]]: ...


def masked_inputs(
    where: ArrayLike | None,
    shape: Sequence[int],
    *arrays: jax.Array,
    counted: jax.Array | None = None,
) -> tuple[jax.Array | None, tuple[jax.Array, ...]]:
    """The masking door: the mask a loss reduces with, and its inputs made safe to compute on.

    Every loss reaches ``where`` (and the entries it leaves out by its own rules: ignored or
    out-of-range labels, entries past a length, given as ``counted``) through here, *before*
    any arithmetic on its inputs. The entries that do not count are replaced by 0 in each
    of ``arrays``, so NaN, ±inf or 1e30 padding there never reaches the value, nor any
    gradient (through ``0 · inf`` or a matmul into shared parameters): their gradient is
    exactly 0.

    Args:
      where: the user's mask (validated and broadcast to ``shape``) or None.
      shape: the per-example loss shape (``reduction="none"``).
      *arrays: the inputs to zero; the mask broadcasts against their leading axes.
      counted: optional boolean array of ``shape``: the entries the loss itself counts.

    Returns:
      ``(mask, arrays)``: the mask to pass to ``reduce_loss`` (None if everything counts),
      and the arrays with the entries that do not count zeroed.
    """
    mask = _checks.mask(where, shape)
    if counted is not None:
        mask = counted if mask is None else mask & counted
    return mask, zero_masked(mask, *arrays)


def safe_divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    """``numerator / denominator``, and 0 (with zero gradients) where the denominator is 0."""
    nonzero = denominator != 0
    return jnp.where(nonzero, numerator / jnp.where(nonzero, denominator, 1), 0)


def linear_weights(
    where: jax.Array | None,
    shape: tuple[int, ...],
    reduction: str,
    *,
    axis_name: AxisName = None,
    dtype: DTypeLike = jnp.float32,
) -> jax.Array:
    """The coefficients ``a`` of a ``"mean"`` or ``"sum"`` as a weighted sum, ``[shape]``,
    in ``dtype`` (the loss's accumulation dtype: float64 for float64 inputs, where float32
    coefficients put a float32 rounding into the mean).

    ``reduce_loss(loss, reduction, where=where, axis_name=axis_name)`` equals
    ``Σ_i a_i loss_i`` summed over the devices of ``axis_name``: for a kernel that needs
    each entry's weight in the loss before the loss exists (``weighted_lse_sum``).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"linear_weights is for 'mean' and 'sum', not {reduction!r}.")
    counted = jnp.ones(shape, bool) if where is None else where
    weights = counted.astype(dtype)
    if reduction == "sum":
        return weights
    return safe_divide(weights, global_sum(jnp.sum(weights), axis_name))


def reduce_loss(
    loss: jax.Array,
    reduction: str = "mean",
    *,
    where: jax.Array | None = None,
    mean_weights: jax.Array | None = None,
    axis_name: AxisName = None,
    allowed: Sequence[str] = _checks.REDUCTIONS,
) -> jax.Array:
    """Reduces per-example loss values as every jaxloss function does.

    Args:
      loss: per-example values, already weighted as the loss defines; float.
      reduction: one of ``allowed``.
      where: boolean mask of ``loss``'s shape (already broadcast by ``_checks.mask``) or
        None. Masked entries contribute 0 and are not counted; ``jnp.where`` (not a product)
        keeps a NaN or inf computed in a masked entry out of the value and the gradient.
      mean_weights: if given, ``"mean"`` divides by the sum of these over unmasked entries
        (torch's weighted mean) instead of by their count.
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"``, ``"sum"`` and ``"batchmean"`` become global.
      allowed: the reductions this loss accepts.

    Returns:
      ``loss`` with masked entries zeroed for ``"none"``; otherwise a scalar.
    """
    _checks.reduction(reduction, allowed)
    if where is not None:
        loss = jnp.where(where, loss, 0)
    if reduction == "none":
        return loss
    total = global_sum(jnp.sum(loss), axis_name)
    if reduction == "sum":
        return total
    if reduction == "batchmean":
        if loss.ndim == 0:
            raise ValueError("reduction='batchmean' needs a loss with a leading batch axis.")
        rows = (
            loss.shape[0]
            if where is None
            else jnp.sum(jnp.any(where.reshape(loss.shape[0], -1), axis=1))
        )
        return safe_divide(total, global_sum(jnp.asarray(rows, loss.dtype), axis_name))
    if mean_weights is None:
        count = jnp.asarray(loss.size if where is None else jnp.sum(where), loss.dtype)
    else:
        weights = jnp.broadcast_to(mean_weights, loss.shape)
        count = jnp.sum(weights if where is None else jnp.where(where, weights, 0))
    return safe_divide(total, global_sum(count.astype(loss.dtype), axis_name))
