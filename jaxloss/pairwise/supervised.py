"""Softmax losses over pairs: ``supcon``, ``info_nce`` and ``n_pairs``.

Each is a cross-entropy per anchor (or query) over a row of similarities: its positives
against every candidate of the (global, with ``axis_name``) batch, or against explicit
negatives. The rows are one ``[batch, global batch]`` matrix (its matmul at
``_numerics.GRAM_PRECISION``) plus, for ``info_nce``, the ``[batch, negatives]`` logits of
the negatives given; nothing larger is built.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _labels, _numerics
from jaxloss._reduce import reduce_loss, safe_divide, zero_masked
from jaxloss._sharding import AxisName, gather_batch
from jaxloss.pairwise._labelled import cosine_pairs, kept_rows, logsumexp_where


def _mean_log_softmax_loss(
    logits: jax.Array, candidates: jax.Array, targets: jax.Array
) -> jax.Array:
    """``[rows]``: minus the mean over each row's ``targets`` of its log-softmax over its
    ``candidates`` (``targets ⊆ candidates``); 0 for a row without targets.

    Each log-probability is ``z - logsumexp`` with the log-sum-exp at least the largest
    candidate, so it is ≤ 0 in floating point too and the loss is never negative.
    """
    log_probs = logits - logsumexp_where(logits, candidates)[:, None]
    total = jnp.sum(jnp.where(targets, log_probs, 0), axis=1)
    return -safe_divide(total, jnp.sum(targets, axis=1))


def _against_global_keys(
    queries: jax.Array, keys: jax.Array, kept: jax.Array, axis_name: AxisName
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Each local query against every key of the global batch.

    Returns:
      ``(scores, themselves, all_kept)``: the dot products ``[batch, global batch]``,
      where each query meets its own key, and the global kept mask ``[global batch]``.
    """
    all_keys, offset = gather_batch(keys, axis_name)
    all_kept, _ = gather_batch(kept, axis_name)
    scores = jnp.einsum("nd,md->nm", queries, all_keys, precision=_numerics.GRAM_PRECISION)
    rows = offset + jnp.arange(queries.shape[0])
    themselves = rows[:, None] == jnp.arange(all_keys.shape[0])[None, :]
    return scores, themselves, all_kept


def _kept_pairs(
    first: ArrayLike, second: ArrayLike, names: tuple[str, str], where: ArrayLike | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Two ``[batch, dim]`` arrays of the same shape, checked, their masked rows zeroed
    (before any similarity: a NaN there must not reach the other rows), and the ``[batch]``
    kept mask."""
    first, second = _checks.rows(first, names[0]), _checks.rows(second, names[1])
    _checks.equal_shapes(**{names[0]: first, names[1]: second})
    kept, (first, second) = kept_rows(where, first, second)
    return first, second, kept


def supcon(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: ArrayLike = 0.1,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Supervised contrastive loss (Khosla et al. 2020), every same-label row a positive.

    The embeddings are L2-normalized and :math:`s_{ik} = \cos(x_i, x_k) / \tau`. Anchor
    ``i``'s positives :math:`P(i)` are the other rows of its label; its candidates are all
    the other rows. The paper's :math:`\mathcal{L}^{sup}_{out}` (the mean over positives
    outside the log):

    .. math::
      \ell_i = -\frac{1}{|P(i)|} \sum_{p \in P(i)}
        \Big(s_{ip} - \log \sum_{k \ne i} e^{s_{ik}}\Big)

    An anchor counts if it has a positive and a negative. ``"mean"`` is the mean of
    :math:`\ell_i` over the anchors that count, as pytorch-metric-learning's ``SupConLoss``
    (whose ``AvgNonZeroReducer`` averages the anchors with a loss > 0, and which gives 0
    when the batch holds no negative pair: then no anchor has a negative). Its reducer
    also leaves out an anchor whose loss is exactly 0, which happens only when rounding
    gives its positives all the softmax mass; here it counts. ``"none"`` gives
    :math:`\ell_i` per anchor (0 for anchors that do not count), ``"sum"`` their sum.

    Numerics: embeddings are normalized by their norms floored at 1e-12 (a zero embedding
    has cosine 0 with every other, and identical embeddings cosine 1), and the normalizer
    is a log-sum-exp: finite for finite inputs and any ``τ > 0`` with a finite ``1/τ``.
    NaN or inf in an unmasked embedding gives NaN, even where no anchor counts.

    Args:
      embeddings: ``[batch, dim]``.
      labels: ``[batch]`` integer class of each embedding.
      temperature: τ.
      where: optional ``[batch]`` boolean mask; masked rows are neither anchors nor
        candidates (equal to dropping them).
      reduction: ``"mean"`` (over the anchors that count), ``"sum"`` or ``"none"``
        (``[batch]``, :math:`\ell_i`).
      axis_name: mapped axis over which the batch is split: positives and negatives come
        from every device, and the mean is over the anchors of the global batch.

    Returns:
      A float32 scalar (0 when no anchor counts), or the per-anchor losses for
      ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
      >>> # Anchors 0 and 1: log(1 + e^-1); anchor 2 has no positive.
      >>> round(float(jaxloss.supcon(x, jnp.array([0, 0, 1]), temperature=1.0)), 4)
      0.3133

    References:
      Khosla, Teterwak, Wang, Sarna, Tian, Isola, Maschinot, Liu and Krishnan, "Supervised
      Contrastive Learning", NeurIPS 2020, https://arxiv.org/abs/2004.11362.
    """
    _checks.in_range(temperature, "temperature", low=0, low_open=True)
    _checks.reduction(reduction)
    similarities, is_positive, is_negative, _, nan_if_not_finite = cosine_pairs(
        embeddings, labels, where, axis_name
    )
    logits = similarities * (1 / jnp.asarray(temperature, similarities.dtype))
    loss = _mean_log_softmax_loss(logits, is_positive | is_negative, is_positive)
    counted = jnp.any(is_positive, axis=1) & jnp.any(is_negative, axis=1)
    return reduce_loss(loss, reduction, where=counted, axis_name=axis_name) + nan_if_not_finite


def info_nce(
    query: ArrayLike,
    positive: ArrayLike,
    negatives: ArrayLike | None = None,
    *,
    temperature: ArrayLike = 0.1,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""InfoNCE (van den Oord et al. 2018), with in-batch negatives, a queue or explicit ones.

    Query ``q_i`` and its positive key ``k_i^+`` are L2-normalized, as are the negatives
    :math:`k_j^-`, and each query's loss is a softmax cross-entropy with the positive as
    the target:

    .. math::
      \ell_i = -\log \frac{e^{q_i \cdot k_i^+ / \tau}}{e^{q_i \cdot k_i^+ / \tau}
        + \sum_{j} e^{q_i \cdot k_j^- / \tau}}

    The negatives are:

    * ``negatives=None``: the other rows' positive keys (in-batch, one direction of CLIP);
      with ``axis_name`` those of every device, so the softmax spans the global batch;
    * ``[num_negatives, dim]``: one set shared by every query (MoCo's queue). With
      ``axis_name`` it is not gathered: each device passes the same queue, as MoCo does;
    * ``[batch, num_negatives, dim]``: each query's own negatives (mined hard negatives).

    ``"mean"`` is the mean over the (unmasked) queries of the global batch, ``"none"`` one
    value per query.

    Numerics: vectors are normalized by their norms floored at 1e-12 (a zero vector has
    cosine 0 with every other), and the normalizer is a log-sum-exp: finite for finite
    inputs and any ``τ > 0`` with a finite ``1/τ``. An empty set of negatives gives 0.

    Args:
      query: ``[batch, dim]``.
      positive: ``[batch, dim]``, the positive key of each query.
      negatives: None, ``[num_negatives, dim]`` or ``[batch, num_negatives, dim]``.
      temperature: τ.
      where: optional ``[batch]`` boolean mask; a masked row is neither a query nor, in
        the in-batch form, a negative of the others (equal to dropping it).
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis over which the batch is split: the mean is over the global
        batch, and in-batch negatives come from every device.

    Returns:
      A float32 scalar, or the per-query losses for ``reduction="none"``.

    Raises:
      ValueError: if ``negatives`` has another shape.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> q = jnp.eye(2)  # each query's key is itself and the other key is orthogonal
      >>> round(float(jaxloss.info_nce(q, q, temperature=1.0)), 4)  # log(1 + e^-1)
      0.3133

    References:
      van den Oord, Li and Vinyals, "Representation Learning with Contrastive Predictive
      Coding", arXiv 2018, https://arxiv.org/abs/1807.03748. He, Fan, Wu, Xie and Girshick,
      "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020,
      https://arxiv.org/abs/1911.05722.
    """
    _checks.in_range(temperature, "temperature", low=0, low_open=True)
    _checks.reduction(reduction)
    query, positive, kept = _kept_pairs(query, positive, ("query", "positive"), where)
    batch, dim = query.shape
    u_query, u_positive = _numerics.l2_normalize(query), _numerics.l2_normalize(positive)
    inverse_temperature = 1 / jnp.asarray(temperature, u_query.dtype)
    if negatives is None:
        scores, themselves, all_kept = _against_global_keys(u_query, u_positive, kept, axis_name)
        logits = scores * inverse_temperature
        loss = _mean_log_softmax_loss(logits, all_kept[None, :] | themselves, themselves)
        return reduce_loss(loss, reduction, where=kept, axis_name=axis_name)

    negatives = _checks.float_array(negatives, "negatives")
    shared = negatives.ndim == 2 and negatives.shape[1] == dim
    if not (shared or (negatives.ndim == 3 and negatives.shape[::2] == (batch, dim))):
        raise ValueError(
            f"`negatives` must be [num_negatives, {dim}] (shared by every query) or "
            f"[{batch}, num_negatives, {dim}] (per query), got shape {negatives.shape}."
        )
    if not shared:
        (negatives,) = zero_masked(kept, negatives)
    u_negatives = _numerics.l2_normalize(negatives)
    spec = "nd,md->nm" if shared else "nd,nmd->nm"
    negative_scores = jnp.einsum(spec, u_query, u_negatives, precision=_numerics.GRAM_PRECISION)
    positive_scores = jnp.sum(u_query * u_positive, axis=1, keepdims=True)
    logits = jnp.concatenate([positive_scores, negative_scores], axis=1) * inverse_temperature
    target = jnp.arange(logits.shape[1]) == 0
    loss = _mean_log_softmax_loss(
        logits, jnp.ones(logits.shape, bool), jnp.broadcast_to(target, logits.shape)
    )
    loss = reduce_loss(loss, reduction, where=kept, axis_name=axis_name)
    # A NaN in the queue reaches its gradient through the matmul even when every query is
    # masked; it must then reach the value too. (A query's own negatives are masked with it.)
    return loss + jnp.sum(0 * negatives) if shared else loss


def n_pairs(
    anchors: ArrayLike,
    positives: ArrayLike,
    *,
    labels: ArrayLike | None = None,
    l2_reg: ArrayLike = 0.0,
    normalize: bool = False,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""N-pair loss (Sohn 2016): each anchor's positive against the other pairs' positives.

    For ``N`` pairs :math:`(f_i, f_i^+)` of ``N`` different classes, on the embeddings as
    they are (dot products, as the paper; with ``normalize``, on the L2-normalized ones):

    .. math::
      \ell_i = \log\Big(1 + \sum_{j \ne i} e^{f_i \cdot f_j^+ - f_i \cdot f_i^+}\Big)
        + \frac{\lambda}{4}\big(\|f_i\|^2 + \|f_i^+\|^2\big)

    the softmax cross-entropy of the row :math:`f_i \cdot f_j^+` with target ``i``, plus
    the L2 regularizer that keeps the unnormalized embeddings small, as TensorFlow's
    ``npairs_loss`` (whose ``reg_lambda`` is λ, 0.002 by default there): its mean over
    pairs is λ/4 (mean ‖f‖² + mean ‖f⁺‖²), of the embeddings as given.

    With ``labels``, pairs may share a class: the positives of anchor ``i`` are then all
    :math:`f_j^+` of its label (the target is uniform over them, as TensorFlow's
    ``npairs_loss``), ``-mean_{j: y_j = y_i} log softmax_j``; with distinct labels (or
    none) it is the form above.

    pytorch-metric-learning's ``NPairsLoss(embeddings, labels)`` picks the pairs itself:
    for each label with two rows or more, its first two rows as (anchor, positive). Its
    default distance normalizes the embeddings (``normalize=True`` here), it has no
    regularizer (λ = 0), and it averages over the pairs, as ``"mean"`` here does. A batch
    of ``N`` labels with two rows each, the second half repeating the first half's labels
    (``MPerClassSampler(m=2)`` reordered), is
    ``n_pairs(embeddings[:N], embeddings[N:], normalize=True)``.

    Numerics: the normalizer is a log-sum-exp, finite for finite dot products; the loss is
    never negative.

    Args:
      anchors: ``[pairs, dim]``.
      positives: ``[pairs, dim]``; row ``i`` is anchor ``i``'s positive.
      labels: optional ``[pairs]`` integer class of each pair; None: all different.
      l2_reg: λ ≥ 0.
      normalize: L2-normalize anchors and positives first (static), so the scores are
        cosines, as pytorch-metric-learning's default ``DotProductSimilarity``.
      where: optional ``[pairs]`` boolean mask; a masked pair is neither an anchor nor a
        negative (equal to dropping it).
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[pairs]``).
      axis_name: mapped axis over which the pairs are split: every device's positives are
        candidates of every anchor, and the mean is over the global pairs.

    Returns:
      A float32 scalar, or the per-pair losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> f = jnp.eye(2)  # f_i . f_i+ = 1, f_i . f_j+ = 0: log(1 + e^-1)
      >>> round(float(jaxloss.n_pairs(f, f)), 4)
      0.3133

    References:
      Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss Objective", NeurIPS
      2016, https://papers.nips.cc/paper/6200.
    """
    _checks.in_range(l2_reg, "l2_reg", low=0)
    _checks.reduction(reduction)
    anchors, positives, kept = _kept_pairs(anchors, positives, ("anchors", "positives"), where)
    squared_norms = jnp.sum(jnp.square(anchors) + jnp.square(positives), axis=1)
    if normalize:
        anchors, positives = _numerics.l2_normalize(anchors), _numerics.l2_normalize(positives)
    scores, themselves, all_kept = _against_global_keys(anchors, positives, kept, axis_name)
    targets = themselves
    if labels is not None:
        labels = _checks.per_row(
            _checks.integer_array(_labels.identities(labels), "labels"),
            anchors.shape[0],
            "labels",
        )
        all_labels, _ = gather_batch(labels, axis_name)
        targets = themselves | (all_kept[None, :] & (labels[:, None] == all_labels[None, :]))
    loss = _mean_log_softmax_loss(scores, all_kept[None, :] | themselves, targets)
    if not _checks.is_static_zero(l2_reg):
        loss = loss + jnp.asarray(l2_reg, loss.dtype) / 4 * squared_norms
    return reduce_loss(loss, reduction, where=kept, axis_name=axis_name)
