"""Proxy-based metric learning: ProxyNCA, ProxyAnchor and SoftTriple.

Each scores ``embeddings [batch, dim]`` against learned class proxies (``[num_classes,
dim]``; SoftTriple's ``[num_classes, centers_per_class, dim]``) under the conventions of
the margin family (:mod:`jaxloss.margin.heads`): embeddings and proxies are L2-normalized
inside, labels are global class ids and labels outside the classes are excluded like masked
rows, rows masked by ``where`` are zeroed before any arithmetic (NaN there reaches neither
the value nor a gradient), ``chunk_size`` scores the classes in blocks (never a batch ×
classes matrix, in the forward or the backward pass), ``axis_name`` splits the batch and
``class_axis_name`` the proxies (the same axis for both is Partial FC).

ProxyNCA is a margin head (``classes.margin_softmax``). SoftTriple's class score is a
softmax over sub-centers, so its normalizer comes from ``_kernels.class_blocks``'
``class_logsumexp``. ProxyAnchor is not a sum over examples but over proxies: each proxy's
log-sum-exps over the rows (``class_sum``) are combined over the batch's devices by a
``logsumexp_over_shards``, so the batch is never gathered.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._kernels.class_blocks import BlockTerms, class_logsumexp, class_sum
from jaxloss._reduce import reduce_loss, safe_divide
from jaxloss._sharding import AxisName, global_sum, logsumexp_over_shards, shard_offset
from jaxloss.margin.classes import (
    check_labels,
    counted_rows,
    global_num_classes,
    label_rows,
    margin_softmax,
    partial_fc,
    same_devices,
    sub_center_cosines,
)

# The authors' code adds it under the square root of the center regularizer: a finite
# gradient (below ~160) where two sub-centers of a class coincide.
_CENTER_EPS = 1e-5


def proxy_nca(
    embeddings: ArrayLike,
    proxies: ArrayLike,
    labels: ArrayLike,
    *,
    scale: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
) -> jax.Array:
    r"""ProxyNCA: a softmax over the negative squared distances to class proxies.

    .. math::
      \ell_i = -\log \frac{e^{-s\|\hat x_i - \hat p_{y_i}\|^2}}{\sum_j e^{-s\|\hat x_i -
      \hat p_j\|^2}} = -\log \frac{e^{2s\cos\theta_{y_i}}}{\sum_j e^{2s\cos\theta_j}}

    with :math:`\hat x, \hat p` the normalized embeddings and proxies (``‖x̂ − p̂‖² = 2 −
    2 cos θ``; the constant cancels): NormFace with scale ``2s``. As PyTorch Metric
    Learning's ``ProxyNCALoss(softmax_scale=s)``, the target proxy is in the denominator
    (the paper's NCA form leaves it out). PML drops a row whose probability underflows to
    0; here the loss is a log-softmax, finite for every row. A zero proxy scores cos 0
    here, where PML's distance to it is 1 (cos ½).

    Numerics, masking and the options below: as every margin head
    (:mod:`jaxloss.margin.heads`); ``"mean"`` is over the rows that count, as PML's.

    Args:
      embeddings: ``[batch, dim]``.
      proxies: ``[num_classes, dim]``, one proxy per class.
      labels: ``[batch]`` integer class ids.
      scale: PML's ``softmax_scale`` s > 0; may be traced.
      where: optional ``[batch]`` boolean mask.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      chunk_size: classes per block (static).
      axis_name: mapped axis of the batch.
      class_axis_name: mapped axis of the proxies.

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x, p = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> round(float(jaxloss.proxy_nca(x, p, jnp.array([0]))), 4)  # log(1 + e^-2)
      0.1269

    References:
      Movshovitz-Attias, Toshev, Leung, Ioffe and Singh, "No Fuss Distance Metric Learning
      using Proxies", 2017. https://arxiv.org/abs/1703.07464
    """
    _checks.in_range(scale, "scale", low=0, low_open=True)
    return margin_softmax(
        embeddings,
        proxies,
        labels,
        lambda cos, s, _: s * cos,
        normalize_embeddings=True,
        scale=2 * jnp.asarray(scale),
        where=where,
        reduction=reduction,
        chunk_size=chunk_size,
        axis_name=axis_name,
        class_axis_name=class_axis_name,
        classes_name="proxies",
    )


def _lse_over_rows(z: jax.Array, mask: jax.Array) -> jax.Array:
    """``[classes]`` log-sum-exp of each column of ``z`` over ``mask``; the dtype's lowest
    value (not -inf, so shards combine and ``logaddexp(0, ·)`` is 0 with zero gradients)
    for a column with nothing in its mask."""
    floor = jnp.finfo(z.dtype).min
    top = jax.lax.stop_gradient(jnp.max(jnp.where(mask, z, floor), axis=0, initial=floor))
    total = jnp.sum(jnp.exp(jnp.where(mask, z - top[None, :], -jnp.inf)), axis=0)
    some = total != 0  # NaN (from a NaN row that counts) propagates, as it must
    return jnp.where(some, top + jnp.log(jnp.where(some, total, 1)), floor)


def _anchor_terms(num_classes: int) -> BlockTerms:
    """The block function of ``class_sum``: each class's log-sum-exps over its positive and
    its negative rows, written at the block's place in ``[num_classes]`` vectors."""

    def terms(
        rows: tuple[jax.Array, ...], block: jax.Array, ids: jax.Array, new: jax.Array
    ) -> tuple[jax.Array, ...]:
        unit_x, labels, counted, alpha, margin = rows
        cos = unit_x @ _numerics.l2_normalize(block).T
        # Labels travel as floats (the kernel differentiates its rows): exact below 2^24.
        same = labels[:, None] == ids[None, :].astype(labels.dtype)
        counts = counted[:, None] > 0
        pos = _lse_over_rows(-alpha * (cos - margin), counts & same)
        neg = _lse_over_rows(alpha * (cos + margin), counts & ~same)
        return tuple(
            jax.lax.dynamic_update_slice_in_dim(
                jnp.zeros(num_classes, v.dtype), jnp.where(new, v, 0), ids[0], 0
            )
            for v in (pos, neg)
        )

    return terms


def proxy_anchor(
    embeddings: ArrayLike,
    proxies: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 0.1,
    alpha: ArrayLike = 32.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
) -> jax.Array:
    r"""Proxy-Anchor: each proxy pulls its batch positives and pushes its batch negatives.

    .. math::
      L = \frac{1}{|P^+|}\sum_{p \in P^+} \log\Big(1 + \sum_{x \in X_p^+}
      e^{-\alpha(s(x, p) - \delta)}\Big) + \frac{1}{|P|}\sum_{p \in P} \log\Big(1 +
      \sum_{x \in X_p^-} e^{\alpha(s(x, p) + \delta)}\Big)

    with ``s`` the cosine, :math:`X_p^+` the rows labelled ``p`` and :math:`X_p^-` the
    others (of the whole batch, every device's with ``axis_name``), :math:`P^+` the proxies
    with a positive in the batch and :math:`P` all of them (every shard's). Each log is a
    log-sum-exp with a 0 term, finite for any ``alpha``.

    Not a sum over examples, so ``"none"`` is per proxy: ``[num_classes]`` (this shard's
    classes with ``class_axis_name``), the positive and negative terms of each, the positive
    one 0 for a proxy without positives. ``"sum"`` adds them; ``"mean"`` is :math:`L`
    above, PyTorch Metric Learning's ``ProxyAnchorLoss`` (its ``DivisorReducer``).
    ``where [batch]`` masks rows: a masked row is in no :math:`X_p`, so masking equals
    dropping the row. A batch without rows gives 0.

    Args:
      embeddings: ``[batch, dim]``.
      proxies: ``[num_classes, dim]``, one proxy per class.
      labels: ``[batch]`` integer class ids.
      margin: the margin δ; may be traced.
      alpha: the scale α > 0; may be traced.
      where: optional ``[batch]`` boolean mask of rows.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[num_classes]``, per proxy).
      chunk_size: classes per block (static).
      axis_name: mapped axis of the batch.
      class_axis_name: mapped axis of the proxies.

    Returns:
      A float32 scalar, or the per-proxy losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x, p = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> # log(1 + e^-0.9) / 1 + (0 + log(1 + e^0.1)) / 2
      >>> round(float(jaxloss.proxy_anchor(x, p, jnp.array([0]), alpha=1.0)), 4)
      0.7134

    References:
      Kim, Kim, Cho and Kwak, "Proxy Anchor Loss for Deep Metric Learning", 2020.
      https://arxiv.org/abs/2003.13911
    """
    _checks.in_range(alpha, "alpha", low=0, low_open=True)
    x, w, labels = _checks.rows_and_classes(embeddings, proxies, labels, "embeddings", "proxies")
    _checks.chunk_size(chunk_size)
    _checks.reduction(reduction)
    # Partial FC: every device scores the global batch against its own proxies. Otherwise
    # each device sums over its own rows and the per-proxy sums are combined below.
    batch_axis = None if same_devices(axis_name, class_axis_name) else axis_name
    x, labels, where, _ = partial_fc(x, labels, where, axis_name, class_axis_name)
    check_labels(labels, w, class_axis_name, where)
    counted, x = counted_rows(x, labels, w, where, class_axis_name)
    num_classes = w.shape[0]
    local_labels = labels - shard_offset(num_classes, class_axis_name)[0]
    rows = (
        _numerics.l2_normalize(x),
        local_labels.astype(x.dtype),
        counted.astype(x.dtype),
        jnp.asarray(alpha, x.dtype),
        jnp.asarray(margin, x.dtype),
    )
    pos, neg = (
        jnp.logaddexp(0, logsumexp_over_shards(lse, batch_axis))
        for lse in class_sum(_anchor_terms(num_classes), rows, w, chunk_size=chunk_size)
    )
    if reduction == "none":
        return pos + neg
    if reduction == "sum":
        return global_sum(jnp.sum(pos + neg), class_axis_name)
    here = (local_labels >= 0) & (local_labels < num_classes) & counted
    positives = (
        jnp.zeros(num_classes, x.dtype)
        .at[jnp.where(here, local_labels, 0)]
        .add(here.astype(x.dtype))
    )
    has_positives = global_sum(positives, batch_axis) > 0
    num_positive = global_sum(jnp.sum(has_positives.astype(x.dtype)), class_axis_name)
    total_pos, total_neg = global_sum((jnp.sum(pos), jnp.sum(neg)), class_axis_name)
    return safe_divide(total_pos, num_positive) + total_neg / global_num_classes(w, class_axis_name)


def _class_scores(unit_x: jax.Array, centers: jax.Array, inv_gamma: jax.Array) -> jax.Array:
    """SoftTriple's ``[n, m]`` class scores: the sub-centers' cosines averaged by their
    softmax at temperature γ; ``centers [m, centers_per_class, dim]`` as given."""
    cos = sub_center_cosines(unit_x, centers)
    z, shift = _numerics.class_columns(cos * inv_gamma)
    e = [jnp.exp(zk - shift) for zk in z]
    weighted = functools.reduce(jnp.add, [ek * cos[..., k] for k, ek in enumerate(e)])
    return weighted / functools.reduce(jnp.add, e)


def _soft_triple_logits(
    rows: tuple[jax.Array, jax.Array, jax.Array], block: jax.Array, _: jax.Array
) -> jax.Array:
    unit_x, scale, inv_gamma = rows
    return scale * _class_scores(unit_x, block, inv_gamma)


def _center_spread(_: tuple, centers: jax.Array, ids: jax.Array, new: jax.Array) -> jax.Array:
    """Σ_c Σ_{k<k'} ‖ŵ_ck − ŵ_ck'‖ (with the authors' ε under the root) over a block of
    classes (a ``class_terms`` of the log-sum-exp kernel: no normalized copy of every
    center)."""
    unit = _numerics.l2_normalize(centers)
    per_class = centers.shape[1]
    gram = jnp.einsum("ckd,cld->ckl", unit, unit)
    pairs = jnp.triu(jnp.ones((per_class, per_class), bool), k=1)[None] & new[:, None, None]
    return jnp.sum(jnp.where(pairs, jnp.sqrt(2 + _CENTER_EPS - 2 * gram), 0))


def soft_triple(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    *,
    scale: ArrayLike = 20.0,
    gamma: ArrayLike = 0.1,
    margin: ArrayLike = 0.01,
    reg_weight: ArrayLike = 0.2,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
) -> jax.Array:
    r"""SoftTriple: a softmax over classes scored by several centers each.

    .. math::
      S_c(x) = \sum_k \frac{e^{\hat x \cdot \hat w_{ck}/\gamma}}{\sum_{k'} e^{\hat x \cdot
      \hat w_{ck'}/\gamma}}\, \hat x \cdot \hat w_{ck}, \qquad
      \ell_i = -\log \frac{e^{\lambda(S_{y_i} - \delta)}}{e^{\lambda(S_{y_i} - \delta)} +
      \sum_{c \ne y_i} e^{\lambda S_c}} + \tau R,

    .. math::
      R = \frac{1}{C K (K - 1)} \sum_c \sum_{k < k'} \sqrt{2 + \epsilon - 2\,\hat w_{ck}
      \cdot \hat w_{ck'}}

    with ``C`` classes of ``K`` centers and ε = 1e-5, as the authors' code (no regularizer
    for ``K = 1``). The regularizer does not depend on the rows: it is added to every
    row's loss, so ``"mean"`` is the paper's mean + τR and a batch without rows gives 0.
    PyTorch Metric Learning's ``SoftTripleLoss`` has no regularizer (``reg_weight=0``); its
    weight ``fc [dim, C·K]`` is ``centers.reshape(C·K, dim).T`` (class-major).

    Numerics, masking and the options below: as every margin head
    (:mod:`jaxloss.margin.heads`).

    Args:
      embeddings: ``[batch, dim]``.
      centers: ``[num_classes, centers_per_class, dim]``.
      labels: ``[batch]`` integer class ids.
      scale: λ > 0 (PML's ``la``); may be traced.
      gamma: the temperature γ > 0 of the softmax over a class's centers; may be traced.
      margin: δ; may be traced.
      reg_weight: τ ≥ 0; may be traced.
      where: optional ``[batch]`` boolean mask.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      chunk_size: classes per block (static).
      axis_name: mapped axis of the batch.
      class_axis_name: mapped axis of the classes.

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[1.0, 0.0]])
      >>> centers = jnp.array([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
      >>> loss = jaxloss.soft_triple(x, centers, jnp.array([0]), scale=1.0, margin=0.0,
      ...                            reg_weight=0.0)
      >>> round(float(loss), 4)  # log(1 + e^-1)
      0.3133

    References:
      Qian, Shang, Sun, Hu, Li and Jin, "SoftTriple Loss: Deep Metric Learning Without
      Triplet Sampling", 2019. https://arxiv.org/abs/1909.05235
    """
    _checks.in_range(scale, "scale", low=0, low_open=True)
    _checks.in_range(gamma, "gamma", low=0, low_open=True)
    _checks.in_range(reg_weight, "reg_weight", low=0)
    x, w, labels = _checks.rows_and_classes(
        embeddings, centers, labels, "embeddings", "centers", class_rank=3
    )
    _checks.chunk_size(chunk_size)
    x, labels, where, local = partial_fc(x, labels, where, axis_name, class_axis_name)
    check_labels(labels, w, class_axis_name, where)
    counted, x = counted_rows(x, labels, w, where, class_axis_name)
    unit_x = _numerics.l2_normalize(x)
    scale, inv_gamma = (jnp.asarray(v, x.dtype) for v in (scale, 1 / jnp.asarray(gamma)))
    target_centers, _ = label_rows(w, labels, class_axis_name)
    score = jax.vmap(lambda u, c: _class_scores(u[None], c[None], inv_gamma)[0, 0])(
        unit_x, target_centers
    )
    target = scale * (score - margin)
    first_id, _ = shard_offset(w.shape[0], class_axis_name)
    per_class = w.shape[1]
    # The regularizer (0 for one center per class) rides in the log-sum-exp's pass: one
    # class-gradient buffer, not two.
    local_others, spread = class_logsumexp(
        _soft_triple_logits,
        (unit_x, scale, inv_gamma),
        w,
        labels,
        first_id=first_id,
        chunk_size=chunk_size,
        class_terms=_center_spread,
    )
    others = logsumexp_over_shards(local_others, class_axis_name)
    loss = jnp.logaddexp(others, target) - target
    if per_class > 1:
        total = global_num_classes(w, class_axis_name) * per_class * (per_class - 1)
        loss = loss + reg_weight * global_sum(spread, class_axis_name) / total
    return reduce_loss(local(loss), reduction, where=local(counted), axis_name=axis_name)
