"""Pairwise ranking losses: every pair of a list whose labels are ordered, as rax."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _numerics
from jaxloss._reduce import reduce_loss
from jaxloss._sharding import AxisName
from jaxloss.ranking._lists import lists


def _pairwise(
    pair_loss: Callable[[jax.Array], jax.Array],
    scores: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike | None,
    item_mask: ArrayLike | None,
    where: ArrayLike | None,
    reduction: str,
    axis_name: AxisName,
) -> jax.Array:
    """``Σ_{y_i > y_j} w_i · pair_loss(s_i − s_j)`` per list, and rax's mean over pairs.

    The ``[..., list_size, list_size]`` pairs are formed in full (O(list_size²) memory).
    """
    scores, labels, weights, mask, items = lists(
        scores, labels, weights=weights, item_mask=item_mask, where=where
    )
    pairs = labels[..., :, None] > labels[..., None, :]
    if items is not None:
        pairs &= items[..., :, None] & items[..., None, :]
    # Scores of unpaired items are not read: their differences are replaced, not masked
    # after the fact, so a NaN there reaches no gradient.
    difference = jnp.where(pairs, scores[..., :, None] - scores[..., None, :], 0)
    losses = pair_loss(difference)
    if weights is not None:
        losses = weights[..., :, None] * losses
    loss = jnp.sum(jnp.where(pairs, losses, 0), axis=(-2, -1))
    # A NaN label orders no pair; the list's loss is NaN rather than silently smaller.
    loss = jnp.where(jnp.any(jnp.isnan(labels), axis=-1), jnp.nan, loss)
    count = jnp.sum(pairs, axis=(-2, -1), dtype=loss.dtype)
    return reduce_loss(loss, reduction, where=mask, mean_weights=count, axis_name=axis_name)


def pairwise_hinge_ranking(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    item_mask: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Pairwise hinge ranking loss, as rax's ``pairwise_hinge_loss``.

    .. math::
      \ell = \sum_{i, j:\ y_i > y_j} w_i \max\bigl(0,\ 1 - (s_i - s_j)\bigr)

    over the pairs of valid items of one list whose labels are ordered: the more relevant
    item :math:`i` must outscore :math:`j` by a margin of 1 (Herbrich et al. 2000's
    RankSVM). Ties form no pair. Each pair is weighted by the weight of its more relevant
    item, as rax. The gradient at the hinge's kink is 0 (``jax.nn.relu``'s, as rax).

    ``"mean"`` is rax's default: the sum over every pair of every list that counts,
    divided by the number of those pairs (so a list weighs by its number of pairs, and
    the mean is not the mean of the ``"none"`` values); no pair at all gives 0. ``"none"``
    gives the sum over each list's pairs (rax's ``reduce_fn=None`` gives every pair
    instead).

    Args:
      scores: ``[..., list_size]`` float scores, one list per leading index.
      labels: ``[..., list_size]`` relevance; only their order matters.
      weights: optional ``[..., list_size]`` item weights (a pair takes its better
        item's).
      item_mask: optional boolean ``[..., list_size]``, False for padding items (rax's
        ``where``); they form no pair.
      where: optional boolean mask of the lists, ``[...]``.
      reduction: ``"mean"`` (over pairs), ``"sum"`` or ``"none"`` (per list, ``[...]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-list losses ``[...]`` for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> scores, labels = jnp.array([2.0, 1.0, 3.0]), jnp.array([1.0, 0.0, 0.0])
      >>> float(jaxloss.pairwise_hinge_ranking(scores, labels, reduction="sum"))
      2.0
      >>> float(jaxloss.pairwise_hinge_ranking(scores, labels))  # 2 pairs
      1.0

    References:
      Herbrich, Graepel and Obermayer, "Large Margin Rank Boundaries for Ordinal
      Regression", Advances in Large Margin Classifiers, 2000. Jagerman, Qin, Wang,
      Bendersky and Najork, "Rax: Composable Learning-to-Rank using JAX", KDD 2022.
    """
    return _pairwise(
        lambda d: jax.nn.relu(1 - d),
        scores,
        labels,
        weights,
        item_mask,
        where,
        reduction,
        axis_name,
    )


def pairwise_logistic_ranking(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    item_mask: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Pairwise logistic ranking loss (RankNet), as rax's ``pairwise_logistic_loss``.

    .. math::
      \ell = \sum_{i, j:\ y_i > y_j} w_i \log\bigl(1 + e^{-(s_i - s_j)}\bigr)

    over the pairs of valid items of one list whose labels are ordered: the cross-entropy
    of Burges et al. 2005's RankNet, the probability that :math:`i` ranks above :math:`j`
    being :math:`\sigma(s_i - s_j)`. Ties form no pair; each pair takes the weight of its
    more relevant item, as rax. Computed as ``softplus``: finite for any finite scores.

    Reductions as ``pairwise_hinge_ranking``: ``"mean"`` over the pairs of every list that
    counts (rax's default), ``"none"`` the sum over each list's pairs.

    Args:
      scores: ``[..., list_size]`` float scores, one list per leading index.
      labels: ``[..., list_size]`` relevance; only their order matters.
      weights: optional ``[..., list_size]`` item weights, of the better item of a pair.
      item_mask: optional boolean ``[..., list_size]``, False for padding items.
      where: optional boolean mask of the lists, ``[...]``.
      reduction: ``"mean"`` (over pairs), ``"sum"`` or ``"none"`` (per list, ``[...]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-list losses ``[...]`` for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> scores, labels = jnp.array([2.0, 1.0, 3.0]), jnp.array([1.0, 0.0, 0.0])
      >>> round(float(jaxloss.pairwise_logistic_ranking(scores, labels, reduction="sum")), 4)
      1.6265

    References:
      Burges, Shaked, Renshaw, Lazier, Deeds, Hamilton and Hullender, "Learning to Rank
      using Gradient Descent", ICML 2005. Jagerman, Qin, Wang, Bendersky and Najork, "Rax:
      Composable Learning-to-Rank using JAX", KDD 2022.
    """
    return _pairwise(
        lambda d: _numerics.softplus(-d),
        scores,
        labels,
        weights,
        item_mask,
        where,
        reduction,
        axis_name,
    )
