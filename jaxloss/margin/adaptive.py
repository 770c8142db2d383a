"""Face heads with running statistics: CurricularFace (its t) and AdaFace (the batch's norms).

Both are margin heads (:mod:`jaxloss.margin.heads`: inputs, numerics, masking, chunking,
``class_axis_name`` and Partial FC as there) whose margin reads a running statistic of the
training batches, which the official modules keep in buffers and update in their forward
pass, *before* computing the batch's loss, without gradient. Here the statistics are inputs
(traced hyperparameters: a new value never recompiles) and their update is a function apart:

* ``curricularface(..., t=)`` and ``curricularface_update(t, ...) -> t``;
* ``adaface(..., batch_mean=, batch_std=)`` and ``adaface_update(batch_mean, batch_std, ...)
  -> (batch_mean, batch_std)``.

With ``axis_name`` an update reads the global batch, so every device holds the same state.
``compose.curricularface_with_state``/``compose.adaface_with_state`` (``StatefulLoss``) and
``nn.CurricularFaceHead``/``nn.AdaFaceHead`` (the state as ``nnx.BatchStat``) chain the
update and the loss as the official forward passes do.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._labels import counted_labels
from jaxloss._reduce import masked_inputs, safe_divide
from jaxloss._sharding import AxisName, global_sum
from jaxloss.margin.classes import (
    ScoredRows,
    TargetRows,
    check_labels,
    counted_rows,
    global_num_classes,
    label_rows,
    margin_softmax,
    partial_fc,
)
from jaxloss.margin.heads import arc_margin, check_angle


def _per_row(value: ArrayLike, embeddings: ArrayLike) -> jax.Array:
    """A hyperparameter as a ``[batch]`` array: what the class-block kernel may read."""
    return jnp.broadcast_to(jnp.asarray(value, jnp.float32), jnp.shape(embeddings)[:1])


def curricularface(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    *,
    t: ArrayLike = 0.0,
    scale: ArrayLike = 64.0,
    margin: ArrayLike = 0.5,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
) -> jax.Array:
    r"""CurricularFace: ArcFace whose hard negatives weigh more as training progresses.

    .. math::
      t_i = s\,\psi(\theta_{y_i}), \qquad
      z_{ij} = \begin{cases} s\cos\theta_j (t + \cos\theta_j) & \cos\theta_j >
        \cos(\theta_{y_i} + m) \\ s\cos\theta_j & \text{otherwise} \end{cases}

    with :math:`\psi` ArcFace's target cosine (:func:`jaxloss.arcface`: cos(θ + m), and
    cos θ − m sin m past θ + m = π). A class closer than the target with its margin is a
    hard negative; early in training t ≈ 0 makes it weigh less than an easy one (an easy
    curriculum), and t, the running mean of cos θ_y (:func:`curricularface_update`), grows
    toward 1 as the targets are learned, making hard negatives weigh more. As the official
    code, the hard negatives' logits are computed from cosines clipped to [−1, 1].

    ``t`` is the running state: pass it (traced, no recompiling) and update it with
    :func:`curricularface_update` before the loss, as the official module does in its
    forward pass; ``compose.curricularface_with_state`` and ``nn.CurricularFaceHead`` do
    both. The non-target logits differ per row, so they are computed in class blocks
    (``_kernels.class_blocks``) with ``chunk_size``.

    Numerics, masking and the options below: as every margin head
    (:mod:`jaxloss.margin.heads`).

    Args:
      embeddings: ``[batch, dim]``.
      centers: ``[num_classes, dim]`` class rows.
      labels: ``[batch]`` integer class ids.
      t: the running mean of cos θ_y (0 at the start of training); may be traced.
      scale: the logit scale s > 0; may be traced.
      margin: the additive angular margin m (radians, in (−π, π)); may be traced.
      where: optional ``[batch]`` boolean mask.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      chunk_size: classes per block (static).
      axis_name: mapped axis of the batch.
      class_axis_name: mapped axis of the classes.

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x, y = jnp.array([[1.0, 0.0]]), jnp.array([0])
      >>> w = jnp.array([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])  # cos θ: 0, 1, −1
      >>> # class 1 is hard (1 > cos(θ_y + m) = 0): logit 1·(t + 1); class 2 keeps −1
      >>> [round(float(jaxloss.curricularface(x, w, y, t=t, scale=1.0, margin=0.0)), 4)
      ...  for t in (0.0, 1.0)]  # log(1 + e^(1 + t) + e^−1)
      [1.4076, 2.1698]

    References:
      Huang, Wang, Tai, Liu, Shen, Li, Li and Huang, "CurricularFace: Adaptive Curriculum
      Learning Loss for Deep Face Recognition", CVPR 2020. https://arxiv.org/abs/2004.00288
    """
    check_angle(margin)

    def target_logit(cos: jax.Array, s: jax.Array, rows: TargetRows) -> jax.Array:
        return s * arc_margin(cos, rows.values["margin"])

    def non_target(cos: jax.Array, rows: ScoredRows) -> jax.Array:
        cos = jnp.clip(cos, -1.0, 1.0)
        # The threshold is cos(θ_y + m) itself, also where the target takes the fallback.
        threshold = jnp.cos(_numerics.angle(rows.cos_target) + rows.values["margin"])
        hard = cos > threshold[:, None]
        weighted = jnp.where(hard, cos * (rows.values["t"][:, None] + cos), cos)
        return rows.scale[:, None] * weighted

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
        per_row={"margin": _per_row(margin, embeddings), "t": _per_row(t, embeddings)},
        non_target=non_target,
    )


def _running(old: ArrayLike, new: jax.Array, momentum: ArrayLike, count: jax.Array) -> jax.Array:
    """``momentum · new + (1 − momentum) · old``, or ``old`` where no row counted."""
    _checks.in_range(momentum, "momentum", low=0, high=1)
    old = jnp.asarray(old, new.dtype)
    momentum = jnp.asarray(momentum, new.dtype)
    return jnp.where(count > 0, momentum * new + (1 - momentum) * old, old)


def curricularface_update(
    t: ArrayLike,
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    *,
    momentum: ArrayLike = 0.01,
    where: ArrayLike | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
) -> jax.Array:
    r"""CurricularFace's running t: the exponential moving average of cos θ_y.

    .. math::
      t \leftarrow \alpha \frac{1}{n} \sum_i \cos\theta_{y_i} + (1 - \alpha)\, t

    over the rows that count (``where``, labels that are class ids), the global batch with
    ``axis_name``; ``t`` is unchanged when no row counts. The official module applies it
    in its forward pass, before the loss (``curricularface(..., t=new_t)``), without
    gradient: the result depends on the inputs through ``stop_gradient`` only.

    Args:
      t: the current t, a scalar.
      embeddings: ``[batch, dim]``.
      centers: ``[num_classes, dim]`` class rows.
      labels: ``[batch]`` integer class ids.
      momentum: α in [0, 1], the weight of the batch (0.01 in the official code); may
        be traced.
      where: optional ``[batch]`` boolean mask.
      axis_name: mapped axis of the batch: every device gets the global batch's t.
      class_axis_name: mapped axis of the classes.

    Returns:
      The new t, a scalar of the inputs' float dtype (at least float32).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x, w = jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.eye(2)
      >>> t = jaxloss.curricularface_update(0.5, x, w, jnp.array([0, 0]), momentum=0.5)
      >>> float(t)  # ½ · mean(1, 0) + ½ · 0.5
      0.5
    """
    x, w, labels = _checks.rows_and_classes(embeddings, centers, labels, "embeddings", "centers")
    x, w = jax.lax.stop_gradient((x, w))
    # Under Partial FC the label's class row is summed over the class shards for every
    # device's rows (the gathered batch); each device then keeps its own rows, as the loss.
    x, labels, where, local = partial_fc(x, labels, where, axis_name, class_axis_name)
    check_labels(labels, w, class_axis_name, where)
    counted, x = counted_rows(x, labels, w, where, class_axis_name)
    target_rows, _ = label_rows(w, labels, class_axis_name)
    cos = jnp.sum(_numerics.l2_normalize(x) * _numerics.l2_normalize(target_rows), axis=1)
    cos, counted = local(jnp.where(counted, jnp.clip(cos, -1.0, 1.0), 0)), local(counted)
    total, count = global_sum((jnp.sum(cos), jnp.sum(counted, dtype=cos.dtype)), axis_name)
    return _running(t, safe_divide(total, count), momentum, count)


def adaface(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    *,
    batch_mean: ArrayLike = 20.0,
    batch_std: ArrayLike = 100.0,
    scale: ArrayLike = 64.0,
    margin: ArrayLike = 0.4,
    h: ArrayLike = 0.333,
    eps: ArrayLike = 1e-3,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
) -> jax.Array:
    r"""AdaFace: a margin that adapts to image quality, read from the embedding's norm.

    .. math::
      \hat z_i = \operatorname{clip}\left(h\,\frac{\operatorname{clip}(\|x_i\|, 10^{-3},
        100) - \mu}{\sigma + \epsilon}, -1, 1\right), \qquad
      t_i = s\left(\cos\operatorname{clip}(\theta_{y_i} - m\hat z_i, \epsilon, \pi -
        \epsilon) - (m + m\hat z_i)\right)

    and the other logits :math:`s\cos\theta_j`, every cosine clipped to
    [−1 + ε, 1 − ε] as in the official code. The feature norm ‖x‖ is a proxy of image
    quality: a high-quality image (norm above the batch mean μ, ẑ > 0) gets an ArcFace-like
    angular margin that emphasizes hard examples, a low-quality one (ẑ < 0) a CosFace-like
    margin that de-emphasizes them. ẑ is computed without gradient.

    ``embeddings`` are the backbone's features *before* normalization: their norms carry
    the quality signal (the official head receives ``x / ‖x‖`` and ``‖x‖`` apart). μ and σ
    are the running statistics of the norms: pass them (traced, no recompiling) and update
    them with :func:`adaface_update` before the loss, as the official module does in its
    forward pass; ``compose.adaface_with_state`` and ``nn.AdaFaceHead`` do both.

    Numerics, masking and the options below: as every margin head
    (:mod:`jaxloss.margin.heads`), except that the embeddings' norm matters.

    Args:
      embeddings: ``[batch, dim]`` features, not normalized.
      centers: ``[num_classes, dim]`` class rows.
      labels: ``[batch]`` integer class ids.
      batch_mean: μ, the running mean of the clipped norms (20 at the start); may be traced.
      batch_std: σ, their running standard deviation (100 at the start); may be traced.
      scale: the logit scale s > 0; may be traced.
      margin: m; may be traced.
      h: the concentration h ≥ 0 of ẑ (0.333: 68% of ẑ in [−1/3, 1/3]; 0 gives every
        example the same margins); may be traced.
      eps: ε in [0, 1) of the clips and of the division; may be traced.
      where: optional ``[batch]`` boolean mask.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      chunk_size: classes per block (static).
      axis_name: mapped axis of the batch.
      class_axis_name: mapped axis of the classes.

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x, w, y = jnp.array([[0.0, 2.0]]), jnp.eye(2), jnp.array([0])
      >>> # ‖x‖ = μ: ẑ = 0, so θ_y = π/2 and the target logit is cos(π/2) − m = −0.5
      >>> loss = jaxloss.adaface(x, w, y, batch_mean=2.0, batch_std=1.0, scale=1.0,
      ...                        margin=0.5)
      >>> round(float(loss), 4)  # log(1 + e^(1 − ε + 0.5))
      1.7006

    References:
      Kim, Jain and Liu, "AdaFace: Quality Adaptive Margin for Face Recognition", CVPR 2022.
      https://arxiv.org/abs/2204.00964
    """
    _checks.in_range(h, "h", low=0)
    _checks.in_range(eps, "eps", low=0, high=1, high_open=True)
    batch_mean, batch_std, margin, h, eps = (
        jnp.asarray(v) for v in (batch_mean, batch_std, margin, h, eps)
    )

    def target_logit(cos: jax.Array, s: jax.Array, rows: TargetRows) -> jax.Array:
        norms = jax.lax.stop_gradient(jnp.clip(_numerics.safe_norm(rows.x), 0.001, 100))
        scaler = jnp.clip((norms - batch_mean) / (batch_std + eps) * h, -1, 1)
        angle = _numerics.angle(jnp.clip(cos, -1 + eps, 1 - eps)) - margin * scaler
        return s * (jnp.cos(jnp.clip(angle, eps, jnp.pi - eps)) - margin * (1 + scaler))

    def non_target(cos: jax.Array, rows: ScoredRows) -> jax.Array:
        eps = rows.values["eps"][:, None]
        return rows.scale[:, None] * jnp.clip(cos, -1 + eps, 1 - eps)

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
        per_row={"eps": _per_row(eps, embeddings)},
        non_target=non_target,
    )


def adaface_update(
    batch_mean: ArrayLike,
    batch_std: ArrayLike,
    embeddings: ArrayLike,
    *,
    momentum: ArrayLike = 0.01,
    where: ArrayLike | None = None,
    axis_name: AxisName = None,
) -> tuple[jax.Array, jax.Array]:
    r"""AdaFace's running statistics of the feature norms.

    .. math::
      \mu \leftarrow \alpha\,\bar n + (1 - \alpha)\mu, \qquad
      \sigma \leftarrow \alpha\, s_n + (1 - \alpha)\sigma

    with :math:`\bar n` and :math:`s_n` the mean and the unbiased standard deviation
    (torch's ``std``) of ``clip(‖x‖, 1e-3, 100)`` over the rows that count, the global
    batch with ``axis_name``. The official module applies it in its forward pass, before
    the margins (``adaface(..., batch_mean=μ, batch_std=σ)`` with the new values), without
    gradient. With no row μ is unchanged, with fewer than two σ (torch's ``std`` would be
    NaN there).

    Args:
      batch_mean: the current μ, a scalar.
      batch_std: the current σ, a scalar.
      embeddings: ``[batch, dim]`` features, not normalized.
      momentum: α in [0, 1], the weight of the batch (``t_alpha``, 0.01 in the official training
        configuration); may be traced.
      where: optional ``[batch]`` boolean mask.
      axis_name: mapped axis of the batch: every device gets the global batch's statistics.

    Returns:
      ``(batch_mean, batch_std)``, scalars of the inputs' float dtype (at least float32).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[3.0, 4.0], [0.0, 1.0]])  # norms 5 and 1: mean 3, std 2√2
      >>> mean, std = jaxloss.adaface_update(20.0, 100.0, x, momentum=1.0)
      >>> float(mean), round(float(std), 4)
      (3.0, 2.8284)
    """
    x = jax.lax.stop_gradient(_checks.rows(embeddings, "embeddings"))
    counted, (x,) = masked_inputs(where, x.shape[:1], x)
    counted = jnp.ones(x.shape[:1], bool) if counted is None else counted
    norms = jnp.clip(_numerics.safe_norm(x), 0.001, 100)
    count = global_sum(jnp.sum(counted, dtype=norms.dtype), axis_name)
    mean = safe_divide(global_sum(jnp.sum(jnp.where(counted, norms, 0)), axis_name), count)
    squares = global_sum(jnp.sum(jnp.where(counted, jnp.square(norms - mean), 0)), axis_name)
    std = _numerics.safe_sqrt(safe_divide(squares, count - 1))
    return _running(batch_mean, mean, momentum, count), _running(
        batch_std, std, momentum, count - 1
    )


def _counted_where(
    labels: ArrayLike, centers: ArrayLike, where: ArrayLike | None, class_axis_name: AxisName
) -> jax.Array:
    """``where`` and labels that are class ids: the rows the loss counts."""
    labels = _checks.integer_array(labels, "labels")
    counted = counted_labels(labels, global_num_classes(jnp.asarray(centers), class_axis_name))
    mask = _checks.mask(where, labels.shape)
    return counted if mask is None else counted & mask


def curricularface_and_update(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    t: ArrayLike,
    *,
    momentum: ArrayLike,
    **options: Any,
) -> tuple[jax.Array, jax.Array]:
    """The official forward pass: t updated on the batch, then the loss with the new t.

    ``options`` are :func:`curricularface`'s. Returns ``(loss, new_t)``: t is state, held
    apart from the gradient (the official buffer), and keeps its dtype.
    """
    update_options = {k: options.get(k) for k in ("where", "axis_name", "class_axis_name")}
    old = jax.lax.stop_gradient(jnp.asarray(t))
    t = curricularface_update(
        old, embeddings, centers, labels, momentum=momentum, **update_options
    ).astype(old.dtype)
    return curricularface(embeddings, centers, labels, t=t, **options), t


def adaface_and_update(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    batch_mean: ArrayLike,
    batch_std: ArrayLike,
    *,
    momentum: ArrayLike,
    **options: Any,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """The official forward pass: the statistics updated on the rows the loss counts, then
    the loss with them. ``options`` are :func:`adaface`'s.

    Returns ``(loss, (batch_mean, batch_std))``: the statistics are state, held apart from
    the gradient (the official buffers), and keep their dtypes.
    """
    where = _counted_where(labels, centers, options.get("where"), options.get("class_axis_name"))
    old = jax.lax.stop_gradient((jnp.asarray(batch_mean), jnp.asarray(batch_std)))
    new = adaface_update(
        *old, embeddings, momentum=momentum, where=where, axis_name=options.get("axis_name")
    )
    batch_mean, batch_std = (n.astype(o.dtype) for n, o in zip(new, old, strict=True))
    loss = adaface(
        embeddings, centers, labels, batch_mean=batch_mean, batch_std=batch_std, **options
    )
    return loss, (batch_mean, batch_std)
