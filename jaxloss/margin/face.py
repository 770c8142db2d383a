"""Face-recognition heads past one fixed margin: Sub-center ArcFace, MagFace, ElasticFace.

Each is ``classes.margin_softmax`` like the heads of :mod:`jaxloss.margin.heads`, and shares
their inputs, numerics, masking and options (``where``, ``reduction``, ``chunk_size``,
``axis_name``, ``class_axis_name`` with Partial FC). They differ in what a margin reads:

* Sub-center ArcFace scores a class by its closest of ``K`` sub-centers (centers
  ``[num_classes, K, dim]``), so its non-target log-sum-exp runs through the class-block
  kernel (``_kernels.class_blocks``): with ``chunk_size`` no ``batch × classes × K``
  array is formed, in the forward or the backward pass.
* MagFace's margin grows with the embedding's norm, and a regularizer rewards the norm.
* ElasticFace draws each example's margin from ``key``, by its index in the global batch:
  one device and eight draw the same margins.

``FACE_HEADS`` lists them, for ``jaxloss.nn``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._reduce import reduce_loss
from jaxloss._sharding import AxisName, gather_batch
from jaxloss.margin.classes import (
    TargetRows,
    counted_rows,
    margin_softmax,
    same_devices,
    sub_center_cosines,
)
from jaxloss.margin.heads import arc_margin, check_angle, per_example


def subcenter_cosines(unit_x: jax.Array, sub_centers: jax.Array) -> jax.Array:
    """cos θ_j = max_k x̂ · ŵ_jk: each row's cosine to its closest sub-center of each class.

    Args:
      unit_x: ``[n, dim]`` unit rows.
      sub_centers: ``[m, K, dim]`` class sub-centers (any norm).

    Returns:
      ``[n, m]``.
    """
    return _numerics.class_max(sub_center_cosines(unit_x, sub_centers))


def subcenter_arcface(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    *,
    scale: ArrayLike = 64.0,
    margin: ArrayLike = 0.5,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
) -> jax.Array:
    r"""Sub-center ArcFace: ArcFace with ``K`` sub-centers per class, the closest one scoring.

    .. math::
      \cos\theta_j = \max_k \cos(x, w_{jk}), \qquad
      t_i = s\,\psi(\theta_{y_i}), \qquad \text{other logits } s\cos\theta_j

    with ψ ArcFace's target (:func:`jaxloss.arcface`: :math:`\cos(\theta + m)`, and
    InsightFace's :math:`\cos\theta - m\sin m` past :math:`\theta + m = \pi`). Noisy
    samples of a class gather at a non-dominant sub-center instead of pulling the dominant
    one. A ``margin`` of shape ``[batch]`` gives each example its own.

    Numerics, masking and the options below: as every margin head
    (:mod:`jaxloss.margin.heads`). With ``chunk_size`` the classes are scored in blocks,
    ``batch × chunk_size × K`` cosines at a time, by the class-block kernel.

    Args:
      embeddings: ``[batch, dim]``.
      centers: ``[num_classes, K, dim]`` the sub-centers of each class (PyTorch Metric
        Learning's ``W [dim, num_classes * K]`` is ``W.T.reshape(num_classes, K, dim)``).
      labels: ``[batch]`` integer class ids.
      scale: the logit scale s > 0; may be traced.
      margin: the additive angular margin m (radians, in (−π, π)), scalar or ``[batch]``; may
        be traced.
      where: optional ``[batch]`` boolean mask.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      chunk_size: classes per block (static).
      axis_name: mapped axis of the batch.
      class_axis_name: mapped axis of the classes (``centers`` split on their first axis).

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[1.0, 0.0]])
      >>> w = jnp.array([[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, -1.0]]])
      >>> loss = jaxloss.subcenter_arcface(x, w, jnp.array([0]), scale=1.0, margin=0.5)
      >>> round(float(loss), 4)  # class 0's second sub-center scores: ArcFace's value
      0.3477

    References:
      Deng, Guo, Liu, Gong and Zafeiriou, "Sub-center ArcFace: Boosting Face Recognition
      by Large-Scale Noisy Web Faces", ECCV 2020.
      https://www.ecva.net/papers/eccv_2020/papers_ECCV/papers/123560715.pdf
    """
    _checks.rows_and_classes(embeddings, centers, labels, "embeddings", "centers", class_rank=3)
    check_angle(margin)
    per_row = per_example(margin=margin)

    def target_logit(cos: jax.Array, s: jax.Array, rows: TargetRows) -> jax.Array:
        return s * arc_margin(cos, rows.values.get("margin", jnp.asarray(margin)))

    return margin_softmax(
        embeddings,
        centers,
        labels,
        target_logit,
        normalize_embeddings=True,
        scale=jnp.asarray(scale),
        where=where,
        reduction=reduction,
        chunk_size=chunk_size,
        axis_name=axis_name,
        class_axis_name=class_axis_name,
        per_row=per_row,
        cosines=subcenter_cosines,
    )


def magface(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    *,
    scale: ArrayLike = 64.0,
    lower_norm: ArrayLike = 10.0,
    upper_norm: ArrayLike = 110.0,
    lower_margin: ArrayLike = 0.45,
    upper_margin: ArrayLike = 0.8,
    reg_weight: ArrayLike = 35.0,
    easy_margin: bool = False,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
) -> jax.Array:
    r"""MagFace: an ArcFace margin that grows with the embedding's norm, and a norm reward.

    .. math::
      a_i = \operatorname{clip}(\|x_i\|, l_a, u_a), \qquad
      m(a) = \frac{u_m - l_m}{u_a - l_a}(a - l_a) + l_m, \qquad
      g(a) = \frac{a}{u_a^2} + \frac{1}{a}

      \ell_i = -\log \frac{e^{s\psi_{m(a_i)}(\theta_{y_i})}}
        {e^{s\psi_{m(a_i)}(\theta_{y_i})} + \sum_{j \ne y_i} e^{s\cos\theta_j}}
        + \lambda_g\, g(a_i)

    with ψ_m ArcFace's target with margin m (:func:`jaxloss.arcface`: its fallback
    :math:`\cos\theta - m\sin m` past :math:`\theta + m = \pi`, as the official code's
    threshold :math:`\cos(\pi - m)` and :math:`\sin(\pi - m)\,m`; or ``easy_margin``). The
    norm is the quality of a face: an easy one earns a large norm, which pays a larger
    margin and a smaller :math:`g`. Gradients reach the norm through both, inside
    :math:`[l_a, u_a]`. The ``"mean"`` is the official ``loss_id + λ_g · loss_g`` over the
    rows that count.

    Numerics, masking and the options below: as every margin head
    (:mod:`jaxloss.margin.heads`), except that the embeddings' norm matters.

    Args:
      embeddings: ``[batch, dim]``, not normalized (their norm is the magnitude a).
      centers: ``[num_classes, dim]`` class rows.
      labels: ``[batch]`` integer class ids.
      scale: the logit scale s > 0; may be traced.
      lower_norm: :math:`l_a`, the lower end of the magnitude's range; may be traced.
      upper_norm: :math:`u_a > l_a`, its upper end; may be traced.
      lower_margin: :math:`l_m`, the margin at :math:`l_a` (radians); may be traced.
      upper_margin: :math:`u_m`, the margin at :math:`u_a` (radians); may be traced.
      reg_weight: :math:`\lambda_g \ge 0`, the weight of :math:`g`; may be traced.
      easy_margin: keep cos θ_y where cos θ_y <= 0 instead of the fallback (static).
      where: optional ``[batch]`` boolean mask.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      chunk_size: classes per block (static).
      axis_name: mapped axis of the batch.
      class_axis_name: mapped axis of the classes.

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x, w = jnp.array([[10.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> # ‖x‖ = l_a: margin l_m = 0.45, g = 10/110² + 1/10
      >>> loss = jaxloss.magface(x, w, jnp.array([0]), scale=1.0, reg_weight=0.0)
      >>> round(float(loss), 4)  # log(1 + exp(-cos 0.45))
      0.341
      >>> round(float(jaxloss.magface(x, w, jnp.array([0]), scale=1.0)), 4)  # + 35 g
      3.87

    References:
      Meng, Zhao, Huang and Ding, "MagFace: A Universal Representation for Face
      Recognition and Quality Assessment", CVPR 2021. https://arxiv.org/abs/2103.06627 ;
      official code https://github.com/IrvingMeng/MagFace
    """
    _checks.in_range(lower_norm, "lower_norm", low=0.0, low_open=True)
    lowest = _checks.concrete_number(lower_norm)
    if lowest is not None:
        _checks.in_range(upper_norm, "upper_norm", low=lowest, low_open=True)
    _checks.in_range(reg_weight, "reg_weight", low=0)
    lower_norm, upper_norm = jnp.asarray(lower_norm), jnp.asarray(upper_norm)
    lower_margin, upper_margin = jnp.asarray(lower_margin), jnp.asarray(upper_margin)

    def magnitude(x: jax.Array) -> jax.Array:
        # torch's clamp, as the official code: the full gradient on the bounds too.
        return _numerics.clamp(_numerics.safe_norm(x), lower_norm, upper_norm)

    def target_logit(cos: jax.Array, s: jax.Array, rows: TargetRows) -> jax.Array:
        slope = (upper_margin - lower_margin) / (upper_norm - lower_norm)
        margin = slope * (magnitude(rows.x) - lower_norm) + lower_margin
        return s * arc_margin(cos, margin, easy_margin)

    identity = margin_softmax(
        embeddings,
        centers,
        labels,
        target_logit,
        normalize_embeddings=True,
        scale=jnp.asarray(scale),
        where=where,
        reduction="none",
        chunk_size=chunk_size,
        axis_name=axis_name,
        class_axis_name=class_axis_name,
    )
    # The regularizer of this device's rows, through the same masking door.
    x, w, labels = _checks.rows_and_classes(embeddings, centers, labels, "embeddings", "centers")
    counted, x = counted_rows(x, labels, w, where, class_axis_name)
    a = magnitude(x)
    loss = identity + reg_weight * (a / upper_norm**2 + 1 / a)
    return reduce_loss(loss, reduction, where=counted, axis_name=axis_name)


def _drawn_margins(key: jax.Array, ids: jax.Array, mean: ArrayLike, sigma: ArrayLike) -> jax.Array:
    """``mean + sigma · N(0, 1)`` for each row, drawn from ``fold_in(key, its global index)``."""
    noise = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i)))(ids)
    return jnp.asarray(mean) + jnp.asarray(sigma) * noise


def _by_rank(
    margins: jax.Array, cos: jax.Array, counted: jax.Array, axis_name: AxisName
) -> jax.Array:
    """ElasticFace+: the counted rows' margins sorted and dealt by cos θ_y, the largest
    cos θ_y (over the batch of every device along ``axis_name``) taking the smallest."""
    rows = cos.shape[0]
    (margins, offset), (cos, _), (counted, _) = (
        gather_batch(v, axis_name) for v in (margins, jax.lax.stop_gradient(cos), counted)
    )
    order = jnp.argsort(jnp.where(counted, -cos, jnp.inf))  # counted rows, closest first
    rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0]))
    ascending = jnp.sort(jnp.where(counted, margins, jnp.inf))
    dealt = jnp.where(counted, ascending[rank], margins)
    return jax.lax.dynamic_slice_in_dim(dealt, offset, rows)


def elasticface(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    *,
    key: jax.Array,
    scale: ArrayLike = 64.0,
    margin: ArrayLike | None = None,
    sigma: ArrayLike = 0.05,
    kind: str = "arc",
    plus: bool = False,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
) -> jax.Array:
    r"""ElasticFace: ArcFace or CosFace with each example's margin drawn from N(m, σ).

    .. math::
      m_i \sim \mathcal{N}(m, \sigma), \qquad
      t_i = \begin{cases} s\,\psi_{m_i}(\theta_{y_i}) & \texttt{kind="arc"} \\
        s(\cos\theta_{y_i} - m_i) & \texttt{kind="cos"} \end{cases}

    with ψ ArcFace's target (:func:`jaxloss.arcface`, its fallback past
    :math:`\theta + m_i = \pi` included; the official ElasticFace-Arc has none, which
    differs only there) and the other logits :math:`s\cos\theta_j`. A random margin keeps
    the decision boundary from being one fixed line. ``plus`` (ElasticFace+) sorts the
    batch's margins and deals them by :math:`\cos\theta_{y_i}`: the example closest to its
    center gets the smallest (the official code indexes the sorted margins by the sort
    order itself, which deals them this way only when that permutation is its own inverse;
    this is the rule the paper states). The ranking is over the rows that count of the
    whole batch (every device's along ``axis_name``), without gradient.

    The draw: :math:`m_i` = ``margin + sigma * jax.random.normal(jax.random.fold_in(key,
    i))`` with ``i`` the row's index in the global batch, so one device and eight draw
    the same margins. Pass a new ``key`` every step.

    Numerics, masking and the options below: as every margin head
    (:mod:`jaxloss.margin.heads`).

    Args:
      embeddings: ``[batch, dim]``.
      centers: ``[num_classes, dim]`` class rows.
      labels: ``[batch]`` integer class ids.
      key: a PRNG key (typed or raw) for the margins.
      scale: the logit scale s > 0; may be traced.
      margin: the mean margin m: None takes the paper's, 0.5 (radians) for ``"arc"`` and
        0.35 for ``"cos"``; may be traced.
      sigma: the margins' standard deviation σ ≥ 0 (the paper's 0.05; its ElasticFace+ runs
        use 0.0175 for arc and 0.02 for cos); may be traced.
      kind: ``"arc"`` (angular margin) or ``"cos"`` (cosine margin).
      plus: ElasticFace+ (static).
      where: optional ``[batch]`` boolean mask.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      chunk_size: classes per block (static).
      axis_name: mapped axis of the batch.
      class_axis_name: mapped axis of the classes.

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxloss
      >>> x, w = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> loss = jaxloss.elasticface(
      ...     x, w, jnp.array([0]), key=jax.random.key(0), scale=1.0, sigma=0.0
      ... )
      >>> round(float(loss), 4)  # σ = 0: ArcFace with m = 0.5
      0.3477

    References:
      Boutros, Damer, Kirchbuchner and Kuijper, "ElasticFace: Elastic Margin Loss for Deep
      Face Recognition", CVPR Workshops 2022. https://arxiv.org/abs/2109.09416
    """
    _checks.choice(kind, ("arc", "cos"), "kind")
    _checks.in_range(sigma, "sigma", low=0)
    mean = (0.5 if kind == "arc" else 0.35) if margin is None else margin
    # Under Partial FC the rows are already every device's; otherwise ElasticFace+ gathers.
    rank_axis = None if same_devices(axis_name, class_axis_name) else axis_name

    def target_logit(cos: jax.Array, s: jax.Array, rows: TargetRows) -> jax.Array:
        margins = _drawn_margins(key, rows.ids, mean, sigma).astype(cos.dtype)
        if plus:
            margins = _by_rank(margins, cos, rows.counted, rank_axis)
        return s * (arc_margin(cos, margins) if kind == "arc" else cos - margins)

    return margin_softmax(
        embeddings,
        centers,
        labels,
        target_logit,
        normalize_embeddings=True,
        scale=jnp.asarray(scale),
        where=where,
        reduction=reduction,
        chunk_size=chunk_size,
        axis_name=axis_name,
        class_axis_name=class_axis_name,
    )


FACE_HEADS: tuple[Callable[..., jax.Array], ...] = (subcenter_arcface, magface, elasticface)
"""The heads of this module, for ``nn.MarginSoftmaxHead`` (Sub-center ArcFace with its
``sub_centers`` option, ElasticFace with a ``key`` in every call)."""
