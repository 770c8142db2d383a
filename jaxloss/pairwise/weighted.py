"""Pair-weighting losses of a labelled batch: ``multi_similarity``, ``circle`` and
``lifted_structure``.

Each weighs every positive and negative pair of an anchor inside one log-sum-exp, over the
``[batch, global batch]`` similarity (or distance) matrix of ``batch.py``'s ``labelled_batch``: with
``axis_name`` the pairs are those of the global batch. Sums of exponentials are computed as
log-sum-exps over masked rows, so large scales (``gamma=256``, ``beta=50``) stay finite in
float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._reduce import reduce_loss
from jaxloss._sharding import AxisName, gather_batch, global_sum
from jaxloss.pairwise._labelled import (
    cosine_pairs,
    labelled_batch,
    log1p_sum_exp,
    logsumexp_where,
    pair_masks,
    pairwise_distances,
    per_anchor,
)


def multi_similarity(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: ArrayLike = 2.0,
    beta: ArrayLike = 50.0,
    base: ArrayLike = 0.5,
    epsilon: ArrayLike = 0.1,
    mining: bool = True,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Multi-Similarity loss (Wang et al. 2019), with its pair mining.

    With cosine similarities :math:`S_{ik}` of the L2-normalized embeddings, positives
    :math:`P_i` (the other rows of anchor ``i``'s label) and negatives :math:`N_i` (the rows
    of other labels), each anchor's loss is

    .. math::
      \ell_i = \frac{1}{\alpha} \log\Big(1 + \sum_{p \in P_i} e^{-\alpha (S_{ip} - \lambda)}
      \Big) + \frac{1}{\beta} \log\Big(1 + \sum_{k \in N_i} e^{\beta (S_{ik} - \lambda)}\Big)

    with :math:`\lambda` = ``base``. With ``mining`` (the paper's pair mining), the sums
    keep only the informative pairs: the negatives with
    :math:`S_{ik} + \epsilon > \min_{p \in P_i} S_{ip}` and the positives with
    :math:`S_{ip} - \epsilon < \max_{k \in N_i} S_{ik}`; an anchor without positives or
    without negatives then keeps no pair and costs 0. The mining is a mask: no gradient
    flows through the thresholds.

    ``"none"`` gives each anchor's :math:`\ell_i` (0 for masked rows), ``"mean"`` the mean
    over the (unmasked) anchors, those without pairs included: pytorch-metric-learning's
    ``MultiSimilarityLoss(alpha, beta, base)`` (which mines nothing) is ``mining=False``,
    and the same loss on the pairs of its ``MultiSimilarityMiner(epsilon)`` is
    ``mining=True``.

    Numerics: each :math:`\log(1 + \sum e^z)` is a log-sum-exp with a leading 0 term, finite
    for any ``alpha``, ``beta`` > 0; a zero embedding has cosine 0 with every other. NaN or
    inf in an unmasked embedding gives NaN, even where mining drops its pairs.

    Args:
      embeddings: ``[batch, dim]``.
      labels: ``[batch]`` integer identity of each embedding.
      alpha: the scale α of the positive pairs (> 0).
      beta: the scale β of the negative pairs (> 0).
      base: the similarity λ at which pairs change side.
      epsilon: the mining margin ε (≥ 0).
      mining: whether to mine the pairs (static).
      where: optional ``[batch]`` boolean mask; a masked example is neither an anchor nor
        the other end of a pair.
      reduction: ``"mean"`` (over the anchors), ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis over which the batch is split: the pairs, the mining and the
        mean are those of the global batch.

    Returns:
      A float32 scalar, or the per-anchor losses ``[batch]`` for ``reduction="none"``.

    Examples:
      Two classes at right angles: every positive cosine is 1 and every negative 0, so
      each anchor (one positive, two negatives) costs :math:`\tfrac12 \log(1 + e^{-1}) +
      \tfrac1{50} \log(1 + 2 e^{-25})`; mining keeps no pair, as every positive beats
      every negative by more than ε.

      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
      >>> labels = jnp.array([0, 0, 1, 1])
      >>> round(float(jaxloss.multi_similarity(x, labels, mining=False)), 4)
      0.1566
      >>> float(jaxloss.multi_similarity(x, labels))
      0.0

    References:
      Wang, Han, Huang, Dong and Scott, "Multi-Similarity Loss with General Pair Weighting
      for Deep Metric Learning", CVPR 2019. https://arxiv.org/abs/1904.06627
    """
    _checks.reduction(reduction)
    _checks.in_range(alpha, "alpha", low=0, low_open=True)
    _checks.in_range(beta, "beta", low=0, low_open=True)
    _checks.in_range(epsilon, "epsilon", low=0)
    similarities, is_positive, is_negative, kept, nan_if_not_finite = cosine_pairs(
        embeddings, labels, where, axis_name
    )
    dtype = similarities.dtype
    alpha, beta, base = (jnp.asarray(v, dtype) for v in (alpha, beta, base))
    if mining:
        epsilon = jnp.asarray(epsilon, dtype)
        # The initial values let a row without positives (negatives) keep no negative
        # (positive), and a batch of 0 rows reduce over its empty axis.
        hardest_positive = jnp.min(similarities, axis=1, where=is_positive, initial=jnp.inf)
        hardest_negative = jnp.max(similarities, axis=1, where=is_negative, initial=-jnp.inf)
        is_positive &= similarities - epsilon < hardest_negative[:, None]
        is_negative &= similarities + epsilon > hardest_positive[:, None]
    positive = log1p_sum_exp(-alpha * (similarities - base), is_positive) / alpha
    negative = log1p_sum_exp(beta * (similarities - base), is_negative) / beta
    loss = reduce_loss(positive + negative, reduction, where=kept, axis_name=axis_name)
    return loss + nan_if_not_finite


def circle(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 0.25,
    gamma: ArrayLike = 256.0,
    detach_weights: bool = True,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Circle loss (Sun et al. 2020) of a labelled batch, in its pair form.

    With cosine similarities :math:`s` of the L2-normalized embeddings, an anchor's positive
    similarities :math:`s_p` and negative ones :math:`s_n`, m = ``margin`` and γ = ``gamma``:

    .. math::
      \ell = \log\Big(1 + \sum_n e^{\gamma \alpha_n (s_n - \Delta_n)}
      \sum_p e^{-\gamma \alpha_p (s_p - \Delta_p)}\Big),
      \quad \alpha_p = [1 + m - s_p]_+,\ \alpha_n = [s_n + m]_+,
      \ \Delta_p = 1 - m,\ \Delta_n = m

    computed as ``softplus`` of the sum of two log-sum-exps, so ``gamma=256`` is finite in
    float32. The weights :math:`\alpha_p, \alpha_n` are constants in the gradient
    (``stop_gradient``), as in the paper's analysis and pytorch-metric-learning's
    ``CircleLoss``; ``detach_weights=False`` differentiates through them too.

    ``"none"`` gives each anchor's :math:`\ell` (0 for an anchor without a positive or
    without a negative, and for masked rows), ``"mean"`` the mean over the anchors with
    both: pytorch-metric-learning's ``CircleLoss(m, gamma)`` with its ``AvgNonZeroReducer``
    (which averages the losses > 0; :math:`\ell > 0` for every anchor with both unless
    :math:`e^{-2\gamma m^2}` underflows float32, past :math:`2\gamma m^2 \approx 87`, as
    at m = 0.5 with γ = 256: such anchors' losses are below 1e-38, and this mean counts
    them where PML's leaves them out).

    Args:
      embeddings: ``[batch, dim]``.
      labels: ``[batch]`` integer identity of each embedding.
      margin: the relaxation m.
      gamma: the scale γ (> 0).
      detach_weights: whether :math:`\alpha_p, \alpha_n` are constants in the gradient
        (static).
      where: optional ``[batch]`` boolean mask of the examples that take part (as anchors
        and as the similarities they weigh).
      reduction: ``"mean"`` (over the anchors with both kinds of pairs), ``"sum"`` or
        ``"none"`` (``[batch]``).
      axis_name: mapped axis over which the batch is split: each anchor's similarities and
        the mean come from the global batch.

    Returns:
      A float32 scalar (0 when no anchor has a positive and a negative), or the per-anchor
      losses ``[batch]`` for ``reduction="none"``.

    Examples:
      Positive cosines 1 and negative ones 0: with m = 1/4 every exponent is
      :math:`-\gamma/16`, so with γ = 4 each anchor (one positive, two negatives) costs
      :math:`\log(1 + 2 e^{-1/2})`.

      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
      >>> labels = jnp.array([0, 0, 1, 1])
      >>> round(float(jaxloss.circle(x, labels, gamma=4.0)), 4)
      0.7944

    References:
      Sun, Cheng, Zhang, Zhang, Zheng, Wang and Wei, "Circle Loss: A Unified Perspective of
      Pair Similarity Optimization", CVPR 2020. https://arxiv.org/abs/2002.10857
    """
    _checks.reduction(reduction)
    _checks.in_range(gamma, "gamma", low=0, low_open=True)
    similarities, is_positive, is_negative, _, nan_if_not_finite = cosine_pairs(
        embeddings, labels, where, axis_name
    )
    margin, gamma = (jnp.asarray(v, similarities.dtype) for v in (margin, gamma))
    weighting = jax.lax.stop_gradient(similarities) if detach_weights else similarities
    positive = -gamma * jax.nn.relu(1 + margin - weighting) * (similarities - (1 - margin))
    negative = gamma * jax.nn.relu(weighting + margin) * (similarities - margin)
    counted = jnp.any(is_positive, axis=1) & jnp.any(is_negative, axis=1)
    loss = _numerics.softplus(
        logsumexp_where(positive, is_positive) + logsumexp_where(negative, is_negative)
    )
    loss = jnp.where(counted, loss, 0)
    return reduce_loss(loss, reduction, where=counted, axis_name=axis_name) + nan_if_not_finite


def lifted_structure(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    normalize: bool = False,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Lifted structured loss (Oh Song et al. 2016), the paper's smooth form.

    With Euclidean distances :math:`D_{ij}` between the embeddings (as given, or
    L2-normalized with ``normalize``), the
    negatives :math:`N(i)` of ``i`` (the rows of other labels) and α = ``margin``, each
    positive pair :math:`(i, j)` is charged against the negatives of both its ends:

    .. math::
      J_{ij} = \log\Big(\sum_{k \in N(i)} e^{\alpha - D_{ik}}
      + \sum_{l \in N(j)} e^{\alpha - D_{jl}}\Big) + D_{ij},
      \qquad L = \frac{1}{2|P|} \sum_{(i, j) \in P} [J_{ij}]_+^2

    over the set P of positive pairs. ``"none"`` gives each anchor
    :math:`\tfrac12 \sum_{j} [J_{ij}]_+^2` over its positives (so the anchors' sum counts
    each unordered pair once, ``"sum"``), and ``"mean"`` divides that sum by the number of
    ordered positive pairs, 2|P|: the paper's L, and pytorch-metric-learning's
    ``LiftedStructureLoss(neg_margin=margin, pos_margin=0)`` with ``normalize=True`` (PML's
    default distance normalizes the embeddings). A batch of one label (no negatives)
    gives 0.

    Numerics: both sums are log-sum-exps, combined with ``logaddexp``, so far-apart
    embeddings (distances of 1e4) stay finite; distances have a zero (not NaN) gradient at
    0, so identical embeddings are safe. They come from the Gram form (``batch_triplet``'s
    notes apply).

    Args:
      embeddings: ``[batch, dim]``.
      labels: ``[batch]`` integer identity of each embedding.
      margin: α.
      normalize: whether to L2-normalize the embeddings first (static); a zero embedding
        stays 0.
      where: optional ``[batch]`` boolean mask; a masked row is no anchor, positive or
        negative.
      reduction: ``"mean"`` (over ordered positive pairs), ``"sum"`` or ``"none"``
        (per anchor, ``[batch]``).
      axis_name: mapped axis over which the batch is split: the positive pairs, their
        negatives and the mean come from the global batch.

    Returns:
      A float32 scalar (0 without positive pairs), or the per-anchor totals ``[batch]`` for
      ``reduction="none"``.

    Examples:
      Two identical points per class, the classes 1 apart: each pair has
      :math:`J = \log 4`, so :math:`L = (\log 4)^2 / 2`.

      >>> import jax.numpy as jnp, jaxloss
      >>> x, labels = jnp.array([[0.0], [0.0], [1.0], [1.0]]), jnp.array([0, 0, 1, 1])
      >>> round(float(jaxloss.lifted_structure(x, labels)), 4)
      0.9609

    References:
      Oh Song, Xiang, Jegelka and Savarese, "Deep Metric Learning via Lifted Structured
      Feature Embedding", CVPR 2016. https://arxiv.org/abs/1511.06452
    """
    _checks.reduction(reduction)
    x, labels, kept, all_x, all_labels, all_kept, rows = labelled_batch(
        embeddings, labels, where, axis_name
    )
    if normalize:
        x, all_x = _numerics.l2_normalize(x), _numerics.l2_normalize(all_x)
    distances, nan_if_not_finite = pairwise_distances(x, all_x, squared=False)
    is_positive, is_negative = pair_masks(labels, kept, all_labels, all_kept, rows)
    margin = jnp.asarray(margin, distances.dtype)
    # Both ends of a positive pair share their negatives (the kept rows of other labels), so
    # one row without negatives means the whole batch has none: every J is then -inf.
    has_negative = jnp.any(is_negative, axis=1)
    negatives = logsumexp_where(margin - distances, is_negative)
    all_negatives, _ = gather_batch(negatives, axis_name)
    lifted = jnp.logaddexp(negatives[:, None], all_negatives[None, :]) + distances
    counted = is_positive & has_negative[:, None]
    pair_losses = 0.5 * jnp.square(jax.nn.relu(jnp.where(counted, lifted, 0)))
    loss = per_anchor(pair_losses, reduction, is_positive, None, axis_name)
    return loss + global_sum(nan_if_not_finite, axis_name)
