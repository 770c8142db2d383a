"""Listwise ranking losses: a softmax over each list of scores."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._kernels.soft_cross_entropy import soft_cross_entropy
from jaxloss._reduce import reduce_loss
from jaxloss._sharding import AxisName
from jaxloss.ranking._lists import lists


def _list_cross_entropy(
    scores: jax.Array, relevance: jax.Array, items: jax.Array | None
) -> jax.Array:
    """``-Σ_i r_i log softmax(s)_i`` over the valid items of each list (the last axis).

    The cross-entropy of probability targets (``_kernels.soft_cross_entropy``, here of
    relevance not normalized). Invalid items (relevance zeroed) are scored the lowest
    float, which the softmax gives weight 0 beside any valid item, rather than −inf,
    whose ``0 · (lse + inf)`` would send every padded list down the kernel's slower
    recomputation of NaN rows (measured 1.3x slower at 4096 × 200). That recomputation
    still catches ``lse − lowest`` overflowing (a list scored above about 1e31). A list
    without a valid item gets 0 and finite gradients.
    """
    if items is not None:
        scores = jnp.where(items, scores, jnp.finfo(scores.dtype).min)
    return soft_cross_entropy(scores, relevance)


def ranking_softmax(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    item_mask: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Listwise softmax cross-entropy of a ranking, as ``optax.losses.ranking_softmax_loss``.

    .. math::
      \ell = -\sum_{i} w_i\, y_i \log \frac{e^{s_i}}{\sum_{j} e^{s_j}}

    over the valid items :math:`i, j` of one list: the cross-entropy of the softmax of the
    scores :math:`s` against the relevance labels :math:`y` (not normalized, as optax and
    rax; Cao et al. 2007's ListNet top-one loss when :math:`y` sums to 1). A list whose
    labels are all 0 has loss 0 and counts in the mean, as in optax. A list without a valid
    item (``item_mask`` all False) has loss 0 and does not count.

    Numerics: a log-sum-exp shifted by the list's maximum; an item scored −inf with label 0
    adds nothing (optax gives NaN there), with a label > 0 the loss is +inf. Items masked
    by ``item_mask`` and lists masked by ``where`` may hold anything, even NaN: their
    gradients are exactly 0.

    Args:
      scores: ``[..., list_size]`` float scores, one list per leading index.
      labels: ``[..., list_size]`` relevance of each item (graded integers or floats ≥ 0).
      weights: optional ``[..., list_size]`` item weights; they multiply the labels.
      item_mask: optional boolean ``[..., list_size]``, False for items that are not part
        of their list (padding); optax's ``where``.
      where: optional boolean mask of the lists, ``[...]``.
      reduction: ``"mean"`` (over the lists that count), ``"sum"`` or ``"none"`` (per
        list, ``[...]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-list losses ``[...]`` for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> scores, labels = jnp.array([2.0, 1.0, 3.0]), jnp.array([1.0, 0.0, 0.0])
      >>> round(float(jaxloss.ranking_softmax(scores, labels)), 4)
      1.4076
      >>> mask = jnp.array([True, True, False])  # the third item is padding
      >>> round(float(jaxloss.ranking_softmax(scores, labels, item_mask=mask)), 4)
      0.3133

    References:
      Cao, Qin, Liu, Tsai and Li, "Learning to Rank: From Pairwise Approach to Listwise
      Approach", ICML 2007. Bruch, Wang, Bendersky and Najork, "An Analysis of the Softmax
      Cross Entropy Loss for Learning-to-Rank with Binary Relevance", ICTIR 2019.
    """
    scores, labels, weights, mask, items = lists(
        scores, labels, weights=weights, item_mask=item_mask, where=where, allow_inf=True
    )
    relevance = labels if weights is None else labels * weights
    return reduce_loss(
        _list_cross_entropy(scores, relevance, items), reduction, where=mask, axis_name=axis_name
    )
