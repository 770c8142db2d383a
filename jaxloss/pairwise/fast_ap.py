"""FastAP (Cakir et al. 2019): average precision of a batch's rankings, from distance histograms.

Each anchor ranks the rest of the (global, with ``axis_name``) batch by distance; its
average precision is approximated by soft histograms of its positives' and negatives'
distances. A triangular kernel puts each distance on its two nearest bin centers, so the
histograms are two scatter-adds of the ``[batch, batch]`` distances: O(batch²) memory for
any number of bins, the ``[bins, batch, batch]`` pulses of the reference code never built.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._reduce import reduce_loss, safe_divide
from jaxloss._sharding import AxisName
from jaxloss.pairwise._labelled import unit_pairs

# Squared distances of unit vectors lie in [0, 4]: the range the bins cover.
_SQUARED_DISTANCE_RANGE = 4.0


def _histograms(
    index: jax.Array, upper_share: jax.Array, counted: jax.Array, num_bins: int
) -> jax.Array:
    """``[batch, num_bins + 1]``: each counted entry's mass split between bin ``index``
    (``1 - upper_share``) and bin ``index + 1`` (``upper_share``), summed per row."""
    rows = jnp.broadcast_to(jnp.arange(index.shape[0])[:, None], index.shape)
    empty = jnp.zeros((index.shape[0], num_bins + 1), upper_share.dtype)
    lower = jnp.where(counted, 1 - upper_share, 0)
    upper = jnp.where(counted, upper_share, 0)
    return empty.at[rows, index].add(lower).at[rows, index + 1].add(upper)


def fast_ap(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    num_bins: int = 10,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""FastAP: one minus each anchor's average precision, approximated by histogram binning.

    Each anchor a ranks the other examples by the squared Euclidean distance
    :math:`d_{aj} \in [0, 4]` of their L2-normalized embeddings. With ``num_bins`` + 1
    bin centers :math:`z_k = k\Delta`, :math:`\Delta = 4 / \text{num\_bins}`, and the
    triangular kernel :math:`\delta_k(d) = \max(0, 1 - |d - z_k| / \Delta)`, the soft
    histograms of its positives and of all its candidates, and their cumulative sums, are

    .. math::
      h^+_k = \sum_{p} \delta_k(d_{ap}), \quad h_k = h^+_k + \sum_{n} \delta_k(d_{an}),
      \quad H^+_k = \sum_{j \le k} h^+_j, \quad H_k = \sum_{j \le k} h_j

    and the anchor's loss is

    .. math::
      \ell_a = 1 - \frac{1}{P_a} \sum_k \frac{h^+_k H^+_k}{H_k}

    (terms with :math:`h^+_k H^+_k = 0` or :math:`H_k = 0` are 0), :math:`P_a` its number
    of positives: the precision at each distance, averaged over the positives. It is
    pytorch-metric-learning's ``FastAPLoss(num_bins)``: ``"none"`` gives
    :math:`\ell_a` per anchor (0 for an anchor without positives, which PML leaves out),
    ``"sum"`` their total and ``"mean"`` the mean over the anchors that have a positive
    (PML's ``MeanReducer``; 0 when none has). ``num_bins`` counts intervals, PML's
    convention: the paper's (and its code's) L bins are ``num_bins = L - 1``.

    Numerics: distances from the Gram form (``_numerics.squared_distances``), clipped to
    [0, 4] against rounding; each distance reaches only its two nearest bins, so the
    histograms are exact sums of the kernel (the same values as evaluating every
    :math:`\delta_k`), in O(batch²) memory. The histograms are piecewise linear in the
    distances: the gradient is that of the linear interpolation between bin centers.

    Args:
      embeddings: ``[batch, dim]``; L2-normalized inside.
      labels: ``[batch]`` integer class of each embedding.
      num_bins: number of intervals of [0, 4] (static: it sets the histograms' shape).
      where: optional ``[batch]`` boolean mask; masked rows neither rank nor are ranked.
      reduction: ``"mean"`` (over the anchors with a positive), ``"sum"`` or ``"none"``
        (``[batch]``, per anchor).
      axis_name: mapped axis over which the batch is split: each anchor ranks the global
        batch and the mean is over its anchors.

    Returns:
      A float32 scalar, or the per-anchor losses ``[batch]`` for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
      >>> # Anchor 0 ranks its positive (d = 2) first: AP 1. Anchor 1 ties it with the
      >>> # negative (both d = 2): AP 1/2. Anchor 2 has no positive.
      >>> float(jaxloss.fast_ap(x, jnp.array([0, 0, 1]), num_bins=2))
      0.25

    References:
      Cakir, He, Xia, Kulis and Sclaroff, "Deep Metric Learning to Rank", CVPR 2019.
      https://openaccess.thecvf.com/content_CVPR_2019/html/Cakir_Deep_Metric_Learning_to_Rank_CVPR_2019_paper.html
    """
    num_bins = _checks.static_int(num_bins, "num_bins")
    _checks.reduction(reduction)
    u, all_u, _, kept, is_positive, is_negative = unit_pairs(embeddings, labels, where, axis_name)
    squared = _numerics.squared_distances(u, all_u)
    position = jnp.clip(squared * (num_bins / _SQUARED_DISTANCE_RANGE), 0, num_bins)
    # Clipped after the cast, so a NaN distance still lands in a bin (and makes the loss NaN).
    index = jnp.clip(jnp.floor(position).astype(jnp.int32), 0, num_bins - 1)
    upper_share = position - index.astype(position.dtype)
    positives = _histograms(index, upper_share, is_positive, num_bins)
    negatives = _histograms(index, upper_share, is_negative, num_bins)
    product = positives * jnp.cumsum(positives, axis=1)
    candidates = jnp.cumsum(positives + negatives, axis=1)
    # A bin with no candidate up to it is 0/0, taken as 0 (selected by a comparison that is
    # False for NaN, so NaN is not laundered into 0). Only those: a bin whose positives'
    # mass is 0 while a distance sits on its edge (one-hot embeddings, on a bin centre) is
    # 0 with the derivative of its product, which a test of the product zeroed as well.
    empty = candidates <= 0
    precisions = jnp.where(empty, 0, product / jnp.where(empty, 1, candidates))
    num_positives = jnp.sum(is_positive, axis=1).astype(precisions.dtype)
    loss = 1 - safe_divide(jnp.sum(precisions, axis=1), num_positives)
    return reduce_loss(loss, reduction, where=kept & (num_positives > 0), axis_name=axis_name)
