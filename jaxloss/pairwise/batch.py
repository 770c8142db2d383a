"""Losses over a whole batch's relations: ``batch_triplet`` (online mining) and ``nt_xent``.

Both compare every example with every example of the (global, with ``axis_name``) batch:
a ``[batch, batch]`` distance or similarity matrix, its matmul at
``_numerics.GRAM_PRECISION``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._reduce import reduce_loss
from jaxloss._sharding import AxisName, gather_batch, global_sum
from jaxloss.pairwise._labelled import (
    kept_rows,
    labelled_batch,
    pair_masks,
    pairwise_distances,
    per_anchor,
    softplus_over_negatives,
)

MINING = ("all", "hard", "semihard")


def _search_rows(sorted_rows: jax.Array, values: jax.Array, side: str) -> jax.Array:
    """``searchsorted`` of each row of ``values`` in the same row of ``sorted_rows``."""
    return jax.vmap(lambda row, v: jnp.searchsorted(row, v, side=side))(sorted_rows, values)


def batch_triplet(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    mining: str = "all",
    squared: bool = False,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Triplet loss over every triplet a batch holds, with online mining.

    With distances :math:`D_{ij}` between the batch's embeddings, a positive of anchor
    ``a`` is another example of its label and a negative one of another label, and
    :math:`\ell_{apn} = D_{ap} - D_{an} + m`:

    * ``"all"``: the mean of :math:`\ell_{apn}` over the triplets where it is > 0 (the
      "batch all" strategy; easy triplets would otherwise dilute the mean);
    * ``"hard"``: batch-hard (Hermans et al. 2017), per anchor
      :math:`\max(0, \max_p D_{ap} - \min_n D_{an} + m)`, the mean over anchors that have a
      positive and a negative;
    * ``"semihard"``: FaceNet's semi-hard negatives as TF-Addons'
      ``triplet_semihard_loss``: per anchor-positive pair the closest negative farther than
      the positive, or, if there is none, the farthest negative; the mean of
      :math:`\max(0, \ell)` over pairs.

    ``reduction="none"`` gives each anchor's total (its triplets', pairs' or own term, so
    masked anchors and those without a triplet get 0) and ``"sum"`` their sum; ``"mean"``
    divides that sum by the number of terms the mode averages over, as above (the active
    triplets, the anchor-positive pairs or the anchors), not by the batch size.

    Anchors without a positive, or without a negative, contribute nothing and are not
    counted (TF-Addons would charge a pair whose anchor has no negative ``m + D_ap``).
    Everything is a fixed-shape masked computation on the ``[batch, batch]`` distance
    matrix (sorted negatives and binary searches, O(batch²) memory), so it runs under
    ``jit`` and ``vmap``.

    Numerics: distances come from the Gram form ``‖x‖² + ‖y‖² − 2 x·y`` (its matmul at full
    float32 precision on every backend), clamped at 0 against
    rounding, with a square root whose gradient is 0 at 0; this needs squared norms within
    float32 (``‖x‖ ≲ 1.8e19``) and loses absolute precision for nearby points far from the
    origin (the rounding error grows with ``‖x‖²``). The ±inf that pad missing positives and
    negatives never reach the loss, and a batch with no triplet gives 0. NaN or inf in an
    unmasked embedding gives NaN, even if mining leaves it out of every triplet: it reaches
    every gradient through the distance matrix.

    Args:
      embeddings: ``[batch, dim]``.
      labels: ``[batch]`` integer identity of each embedding.
      margin: m.
      mining: ``"all"``, ``"hard"`` or ``"semihard"`` (static).
      squared: squared Euclidean distances instead of Euclidean ones.
      where: optional ``[batch]`` boolean mask; masked examples take no part at all (as
        anchors, positives or negatives).
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``, per anchor).
      axis_name: mapped axis over which the batch is split: the triplets, the mining and the
        mean are those of the global batch.

    Returns:
      A float32 scalar (0 when the batch holds no triplet), or the per-anchor totals for
      ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[0.0], [1.0], [3.0], [7.0]])
      >>> float(jaxloss.batch_triplet(x, jnp.array([0, 0, 1, 1]), mining="hard"))
      0.75

    References:
      Schroff, Kalenichenko and Philbin, "FaceNet: A Unified Embedding for Face
      Recognition and Clustering", CVPR 2015. Hermans, Beyer and Leibe, "In Defense of the
      Triplet Loss for Person Re-Identification", arXiv:1703.07737, 2017.
    """
    _checks.choice(mining, MINING, "mining")
    _checks.reduction(reduction)
    x, labels, kept, all_x, all_labels, all_kept, rows = labelled_batch(
        embeddings, labels, where, axis_name
    )
    distances, nan_if_not_finite = pairwise_distances(x, all_x, squared)
    # Every device's rows reach every device's gradients, so a NaN on one must show on all.
    nan_if_not_finite = global_sum(nan_if_not_finite, axis_name)
    is_positive, is_negative = pair_masks(labels, kept, all_labels, all_kept, rows)
    has_negative = jnp.any(is_negative, axis=1)
    margin = jnp.asarray(margin, distances.dtype)

    if mining == "hard":
        # The initial values let a batch of 0 rows reduce over its empty axis.
        hardest_positive = jnp.max(distances, axis=1, where=is_positive, initial=-jnp.inf)
        hardest_negative = jnp.min(distances, axis=1, where=is_negative, initial=jnp.inf)
        counted = jnp.any(is_positive, axis=1) & has_negative
        loss = jnp.where(counted, hardest_positive - hardest_negative + margin, 0)
        loss = reduce_loss(jnp.maximum(loss, 0), reduction, where=counted, axis_name=axis_name)
        return loss + nan_if_not_finite

    # Each anchor's negative distances in ascending order, +inf past its last negative.
    sorted_negatives = jnp.sort(jnp.where(is_negative, distances, jnp.inf), axis=1)
    counted = is_positive & has_negative[:, None]
    if mining == "semihard":
        # The first negative farther than the positive, else the farthest negative.
        first_farther = _search_rows(sorted_negatives, distances, "right")
        num_negatives = jnp.sum(is_negative, axis=1)
        farther_exists = first_farther < num_negatives[:, None]
        index = jnp.where(farther_exists, first_farther, num_negatives[:, None] - 1)
        negative = jnp.take_along_axis(sorted_negatives, jnp.maximum(index, 0), axis=1)
        loss = jnp.where(counted, distances - jnp.where(counted, negative, 0) + margin, 0)
        return per_anchor(jnp.maximum(loss, 0), reduction, counted, None, axis_name) + (
            nan_if_not_finite
        )

    # "all": for the pair (a, p), the negatives with l > 0 are the first k of the sorted
    # row, k = #{n: D_an < D_ap + m}; their losses add up to k (D_ap + m) - (prefix sum).
    threshold = distances + margin
    active = _search_rows(sorted_negatives, threshold, "left")
    active = jnp.where(counted, active, 0)
    prefix = jnp.cumsum(jnp.where(jnp.isfinite(sorted_negatives), sorted_negatives, 0), axis=1)
    active_sum = jnp.where(
        active > 0, jnp.take_along_axis(prefix, jnp.maximum(active - 1, 0), axis=1), 0
    )
    pair_total = jnp.where(counted, active * threshold - active_sum, 0)
    weights = active.astype(pair_total.dtype)
    return per_anchor(pair_total, reduction, counted, weights, axis_name) + nan_if_not_finite


def nt_xent(
    z1: ArrayLike,
    z2: ArrayLike | None = None,
    *,
    labels: ArrayLike | None = None,
    temperature: ArrayLike = 0.1,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR, of two views or labels.

    The embeddings are L2-normalized, and :math:`s_{ik} = \cos(u_i, u_k) / \tau`.

    **Two views** (``nt_xent(z1, z2)``): the ``2N`` embeddings of ``N`` pairs; each one's
    positive is its pair's other view and its negatives are the ``2N - 2`` other embeddings:

    .. math::
      \ell_i = -\log \frac{\exp(s_{i j(i)})}{\sum_{k \ne i} \exp(s_{ik})}

    The per-pair value is the mean of its two views' losses, so the ``"mean"`` is SimCLR's
    mean over all ``2N`` embeddings.

    **Labels** (``nt_xent(embeddings, labels=labels)``, as ``optax.losses.ntxent`` and
    pytorch-metric-learning's ``NTXentLoss``): any two rows with the same label are a
    positive pair, rows with other labels the negatives :math:`N(i)`; each positive pair
    :math:`(i, j)` is a softmax over itself and the anchor's negatives:

    .. math::
      \ell_{ij} = -\log \frac{\exp(s_{ij})}{\exp(s_{ij}) + \sum_{k \in N(i)} \exp(s_{ik})}

    ``"none"`` gives each anchor's sum over its positives, ``"sum"`` their total and
    ``"mean"`` the mean over positive pairs (optax's value; 0, not NaN, when there are none).
    Two views are the labels ``[0..N-1, 0..N-1]``: ``nt_xent(concatenate([z1, z2]),
    labels=...)`` has the same mean as ``nt_xent(z1, z2)``.

    Numerics: embeddings are normalized by their norms floored at 1e-12 (a zero embedding has
    cosine 0 with every other), so the logits are cosines divided by τ and the normalizers are
    log-sum-exps: finite for finite inputs and any ``τ > 0`` whose ``1/τ`` is finite. Masked
    rows are zeroed before any similarity, and an anchor left without candidates gets a finite
    (unused) value. A positive pair whose anchor has no negative costs 0 and counts.

    Args:
      z1: ``[batch, dim]`` embeddings of the first views; with ``labels``, the embeddings.
      z2: ``[batch, dim]`` embeddings of the second views; None with ``labels``.
      labels: ``[batch]`` integer labels of the embeddings; None for two views.
      temperature: τ.
      where: optional ``[batch]`` boolean mask; masked pairs (or rows) are neither anchors
        nor candidates (equal to dropping them).
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per pair, or per anchor, ``[batch]``).
      axis_name: mapped axis over which the batch is split: the negatives (and positives)
        come from every device and the mean is over the global batch.

    Returns:
      A float32 scalar, or the per-pair (per-anchor) losses for ``reduction="none"``.

    Raises:
      TypeError: unless exactly one of ``z2`` and ``labels`` is given.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> z = jnp.eye(2)
      >>> round(float(jaxloss.nt_xent(z, z, temperature=1.0)), 4)
      0.5514
      >>> views = jnp.concatenate([z, z])
      >>> labels = jnp.array([0, 1, 0, 1])
      >>> round(float(jaxloss.nt_xent(views, labels=labels, temperature=1.0)), 4)
      0.5514

    References:
      Chen, Kornblith, Norouzi and Hinton, "A Simple Framework for Contrastive Learning of
      Visual Representations", ICML 2020. Khosla et al., "Supervised Contrastive Learning",
      NeurIPS 2020.
    """
    _checks.in_range(temperature, "temperature", low=0, low_open=True)
    if (z2 is None) == (labels is None):
        given = "both" if labels is not None else "neither"
        raise TypeError(
            "`nt_xent` takes `z2` (two views, nt_xent(z1, z2)) or `labels` (labelled "
            f"embeddings, nt_xent(embeddings, labels=labels)), not {given}."
        )
    if labels is not None:
        return _nt_xent_of_labels(z1, labels, temperature, where, reduction, axis_name)
    if jnp.issubdtype(jnp.result_type(z2), jnp.integer):
        raise TypeError(
            "`z2` holds integers: pass labels by keyword, nt_xent(embeddings, labels=labels) "
            "(optax's ntxent(embeddings, labels))."
        )
    assert z2 is not None  # checked above: exactly one of z2 and labels
    z1, z2 = _checks.rows(z1, "z1"), _checks.rows(z2, "z2")
    _checks.equal_shapes(z1=z1, z2=z2)
    batch = z1.shape[0]
    kept, (z1, z2) = kept_rows(where, z1, z2)
    u1, u2 = _numerics.l2_normalize(z1), _numerics.l2_normalize(z2)
    all_u1, offset = gather_batch(u1, axis_name)
    all_u2, _ = gather_batch(u2, axis_name)
    all_kept, _ = gather_batch(kept, axis_name)
    inverse_temperature = 1 / jnp.asarray(temperature, u1.dtype)
    anchors = jnp.concatenate([u1, u2])  # [2 batch, dim]
    candidates = jnp.concatenate([all_u1, all_u2])  # [2 global batch, dim]
    similarities = jnp.einsum("nd,md->nm", anchors, candidates, precision=_numerics.GRAM_PRECISION)
    logits = similarities * inverse_temperature
    rows = offset + jnp.arange(batch)
    themselves = jnp.concatenate([rows, rows + all_u1.shape[0]])
    allowed = jnp.concatenate([all_kept, all_kept])[None, :] & (
        themselves[:, None] != jnp.arange(candidates.shape[0])[None, :]
    )
    # A masked anchor may have nothing left; any finite row keeps its (unused) value finite.
    allowed = allowed | ~jnp.any(allowed, axis=1, keepdims=True)
    normalizer = _numerics.logsumexp(jnp.where(allowed, logits, -jnp.inf))
    positive = jnp.sum(u1 * u2, axis=1) * inverse_temperature
    per_view = normalizer - jnp.concatenate([positive, positive])
    loss = 0.5 * (per_view[:batch] + per_view[batch:])
    return reduce_loss(loss, reduction, where=kept, axis_name=axis_name)


def _nt_xent_of_labels(
    embeddings: ArrayLike,
    labels: ArrayLike,
    temperature: ArrayLike,
    where: ArrayLike | None,
    reduction: str,
    axis_name: AxisName,
) -> jax.Array:
    """``nt_xent(embeddings, labels=labels)``: each positive pair against its anchor's
    negatives; per anchor the sum over its positives."""
    _checks.reduction(reduction)
    x, labels, kept, all_x, all_labels, all_kept, rows = labelled_batch(
        embeddings, labels, where, axis_name, name="z1"
    )
    u, all_u = _numerics.l2_normalize(x), _numerics.l2_normalize(all_x)
    similarities = jnp.einsum("nd,md->nm", u, all_u, precision=_numerics.GRAM_PRECISION)
    logits = similarities * (1 / jnp.asarray(temperature, u.dtype))
    is_positive, is_negative = pair_masks(labels, kept, all_labels, all_kept, rows)
    # -log(e^s / (e^s + e^N)) = log(1 + e^(N - s)); 0 for an anchor without negatives.
    pair_losses = softplus_over_negatives(logits, is_negative, logits)
    return per_anchor(pair_losses, reduction, is_positive, None, axis_name)
