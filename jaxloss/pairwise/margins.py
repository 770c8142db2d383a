"""Margin losses over a labelled batch: ``margin_loss`` (Wu et al.) and ``tuplet_margin``.

Both compare every example of the batch with every example of the (global, with
``axis_name``) batch through one ``[batch, batch]`` matrix of L2-normalized embeddings:
Euclidean distances for ``margin_loss``, cosines for ``tuplet_margin``. Their sums over
triplets and over negatives are weighted counts and log-sum-exps on that matrix, never a
``[batch, batch, batch]`` array.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _labels, _numerics
from jaxloss._reduce import reduce_loss
from jaxloss._sharding import AxisName
from jaxloss.pairwise._labelled import per_anchor, softplus_over_negatives, unit_pairs


def margin_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    beta: ArrayLike = 1.2,
    *,
    margin: ArrayLike = 0.2,
    nu: ArrayLike = 0.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Margin loss of Wu et al. (2017), "Sampling Matters": pairs against a learnable boundary β.

    With :math:`D_{ij}` the Euclidean distance between L2-normalized embeddings, a pair is
    charged when a positive lies farther than :math:`\beta - \alpha` or a negative nearer
    than :math:`\beta + \alpha`:

    .. math::
      \ell_{ij} = \left[\alpha + y_{ij}\,(D_{ij} - \beta_{c(i)})\right]_+, \qquad
      y_{ij} = \begin{cases} +1 & \text{same label} \\ -1 & \text{otherwise} \end{cases}

    The pairs come from every triplet (anchor a, positive p, negative n) of the batch, as
    pytorch-metric-learning's ``MarginLoss(triplets_per_anchor="all")`` takes them: each
    triplet costs :math:`\ell_{ap} + \ell_{an} + \nu\,\beta_{c(a)}`, β being the scalar
    ``beta`` or the anchor's class entry of a per-class ``beta``. Per anchor, with
    :math:`P_a` positives and :math:`N_a` negatives,

    .. math::
      L_a = N_a \sum_p \ell_{ap} + P_a \sum_n \ell_{an} + \nu\, P_a N_a\, \beta_{c(a)}

    ``"none"`` gives :math:`L_a` (0 for an anchor without a positive or a negative),
    ``"sum"`` their total, and ``"mean"`` divides that total by the number of terms
    :math:`\ell > 0` among the triplets' (PML's ``DivisorReducer``): the mean over the
    pairs that still teach something, 0 when none does. ``beta`` is differentiable: pass
    it as a parameter to learn it; ``nu`` > 0 then pushes it down (the paper's ν·β
    regularizer).

    Porting from PML: ``MarginLoss(margin, nu, beta, learn_beta=True, num_classes=C)``
    with its ``beta`` parameter is ``margin_loss(x, y, beta, margin=margin, nu=nu)``. A
    scalar PML β adds ``nu * beta`` once, outside the division (to any batch holding a
    triplet): ``margin_loss(x, y, beta, margin=margin) + nu * beta`` with ``beta`` a scalar
    (PML's ``loss.beta[0]``: its ``[1]``-shaped parameter would be a per-class β of one
    class here); without ``learn_beta`` PML ignores ``nu``. The paper's distance-weighted
    sampling is a miner in PML, not part of the loss; here every triplet counts.

    Numerics: distances from the Gram form (``_numerics.squared_distances``) with a square
    root whose gradient is 0 at 0, so identical embeddings are finite; a zero embedding
    stays 0 after normalization (distance 1 to every unit vector). The hinge has torch's
    subgradient 0 at its kink.

    Args:
      embeddings: ``[batch, dim]``; L2-normalized inside.
      labels: ``[batch]`` integer class of each embedding; with a per-class ``beta``, the
        index of its entry (a row whose label is outside ``[0, num_classes)`` is then left
        out, as a masked one; checked mode raises).
      beta: β, the boundary between positive and negative distances: a scalar, or one per
        class ``[num_classes]``; differentiable.
      margin: α, half the width of the band around β that no pair may enter.
      nu: ν ≥ 0, the weight of the β regularizer.
      where: optional ``[batch]`` boolean mask; masked rows are neither anchors, positives
        nor negatives.
      reduction: ``"mean"`` (over the hinge terms above zero), ``"sum"`` or ``"none"``
        (``[batch]``, each anchor's triplets).
      axis_name: mapped axis over which the batch is split: the triplets and the mean are
        those of the global batch.

    Returns:
      A float32 scalar, or the per-anchor totals ``[batch]`` for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
      >>> # One active term, twice: the positive pair at distance √2, over β - α = 1.
      >>> round(float(jaxloss.margin_loss(x, jnp.array([0, 0, 1]))), 4)
      0.4142

    References:
      Wu, Manmatha, Smola and Krähenbühl, "Sampling Matters in Deep Embedding Learning",
      ICCV 2017. https://arxiv.org/abs/1706.07567
    """
    _checks.in_range(nu, "nu", low=0)
    _checks.reduction(reduction)
    beta = _checks.float_array(beta, "beta", allow_int=True)
    if beta.ndim > 1:
        raise ValueError(f"`beta` must be a scalar or [num_classes], got shape {beta.shape}.")
    if beta.ndim == 1:  # labels index β: one outside [0, num_classes) is left out, as masked
        labels = _checks.integer_array(_labels.identities(labels), "labels")
        where = _checks.mask(where, labels.shape)
        _checked.class_ids(labels, beta.shape[0], where=where)
        valid = _labels.valid_class_ids(labels, beta.shape[0])
        where = valid if where is None else where & valid
    u, all_u, labels, kept, is_positive, is_negative = unit_pairs(
        embeddings, labels, where, axis_name
    )
    distances = _numerics.safe_sqrt(_numerics.squared_distances(u, all_u))
    beta = beta.astype(distances.dtype)
    anchor_beta = beta[labels] if beta.ndim == 1 else jnp.broadcast_to(beta, labels.shape)
    num_positives = jnp.sum(is_positive, axis=1).astype(distances.dtype)
    num_negatives = jnp.sum(is_negative, axis=1).astype(distances.dtype)
    # Each pair is in as many triplets as its anchor has partners of the other kind.
    pair_weight = jnp.where(is_positive, num_negatives[:, None], num_positives[:, None])
    is_pair = is_positive | is_negative
    sign = jnp.where(is_positive, 1, -1).astype(distances.dtype)
    margin = jnp.asarray(margin, distances.dtype)
    hinge = jax.nn.relu(margin + sign * (distances - anchor_beta[:, None]))
    total = jnp.sum(jnp.where(is_pair, pair_weight * hinge, 0), axis=1)
    # NaN counts as active: a NaN total over a count of 0 would otherwise read 0.
    active = jnp.sum(jnp.where(is_pair & ~(hinge <= 0), pair_weight, 0), axis=1)
    regularizer = jnp.asarray(nu, distances.dtype) * num_positives * num_negatives * anchor_beta
    return reduce_loss(
        total + regularizer, reduction, where=kept, mean_weights=active, axis_name=axis_name
    )


def tuplet_margin(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 5.73,
    scale: ArrayLike = 64.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Tuplet margin loss (Yu and Tao, 2019): each positive pair against its anchor's negatives.

    With :math:`\theta_{ij}` the angle between embeddings i and j, each positive pair
    (a, p) is a softmax over itself, its angle tightened by the margin β, and every
    negative n of the anchor, at scale s:

    .. math::
      \ell_{ap} = \log\Big(1 + \sum_n e^{\,s\,(\cos\theta_{an} - \cos(\theta_{ap} - \beta))}\Big)

    ``"none"`` gives each anchor's sum over its positives, ``"sum"`` their total and
    ``"mean"`` the mean over positive pairs, as pytorch-metric-learning's
    ``TupletMarginLoss(margin, scale)`` (its ``MeanReducer`` over pairs). A pair whose
    anchor has no negative costs 0 and counts.

    Numerics: the margin is in degrees (PML's convention; 5.73° is 0.1 rad). The angle is
    the arccos of the cosine, its derivative taken at most ±(1 − 1e-6), as the margin
    heads', so identical embeddings (θ = 0, where PML's gradient is NaN) have finite
    gradients; the angle itself is exact. The sum is a log-sum-exp, finite for any scale.

    Args:
      embeddings: ``[batch, dim]``; L2-normalized inside.
      labels: ``[batch]`` integer class of each embedding.
      margin: β in degrees.
      scale: s.
      where: optional ``[batch]`` boolean mask; masked rows take no part (as if dropped).
      reduction: ``"mean"`` (over positive pairs), ``"sum"`` or ``"none"`` (``[batch]``,
        each anchor's sum over its positives).
      axis_name: mapped axis over which the batch is split: the negatives come from every
        device and the mean is over the global batch's positive pairs.

    Returns:
      A float32 scalar, or the per-anchor sums ``[batch]`` for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
      >>> # Both pairs: log(1 + e^(0 - 1)), the negative at 90°, the positive at 0°.
      >>> loss = jaxloss.tuplet_margin(x, jnp.array([0, 0, 1]), margin=0.0, scale=1.0)
      >>> round(float(loss), 4)
      0.3133

    References:
      Yu and Tao, "Deep Metric Learning with Tuplet Margin Loss", ICCV 2019.
      https://openaccess.thecvf.com/content_ICCV_2019/html/Yu_Deep_Metric_Learning_With_Tuplet_Margin_Loss_ICCV_2019_paper.html
    """
    _checks.in_range(scale, "scale", low=0, low_open=True)
    _checks.reduction(reduction)
    u, all_u, _, _, is_positive, is_negative = unit_pairs(embeddings, labels, where, axis_name)
    cosines = jnp.einsum("nd,md->nm", u, all_u, precision=_numerics.GRAM_PRECISION)
    scale = jnp.asarray(scale, cosines.dtype)
    margin = jnp.deg2rad(jnp.asarray(margin, cosines.dtype))
    positive_logits = scale * jnp.cos(_numerics.angle(cosines) - margin)
    pair_losses = softplus_over_negatives(scale * cosines, is_negative, positive_logits)
    return per_anchor(pair_losses, reduction, is_positive, None, axis_name)
