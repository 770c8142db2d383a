"""Margin softmax (face and speaker verification), center loss, and linear cross-entropy.

Shapes: ``embeddings``/``hidden``/``features`` ``[batch, dim]``; ``centers``/``weight``
``[num_classes, dim]`` (the class weight rows); ``labels`` ``[batch]`` int. The per-example
loss (``reduction="none"``) has shape ``[batch]``.

Every softmax here has the form: logits ``z_j = x · w_j (+ b_j)`` for the non-target classes
and a *target logit* ``t`` computed apart (with its margin). So each is

    loss = logaddexp(r, t) - t,   r = log Σ_{j != y} exp(z_j),

with ``r`` from the shared kernel ``_kernels.chunked_logsumexp`` (chunked with
``chunk_size``: never a batch × classes matrix, in the forward or the backward pass), and
``t`` from the label's class row alone (O(batch × dim)), differentiated by autodiff.

``class_axis_name`` (model parallel, as Partial FC): ``centers`` hold this device's slice of
the classes along that mapped axis; labels are global ids. Each device computes ``r`` over
its own classes; the shards combine with a ``pmax`` of the (stop-gradient) maxima and a
``psum``, and the label's class row is ``psum``-ed from the device that holds it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._kernels.chunked_logsumexp import (
    accumulation_dtype,
    lse_excluding_targets,
    weighted_lse_sum,
)
from jaxloss._reduce import (
    AxisName,
    _global_sum,
    gather_batch,
    linear_weights,
    masked_inputs,
    reduce_loss,
    shard_offset,
    valid_class_ids,
)

# cos θ is clipped this far inside [-1, 1] before arccos: the angle's derivative,
# -1/sqrt(1 - cos²), stays finite (below ~700) at θ = 0 and θ = π.
_COS_LIMIT = 1.0 - 1e-6


def _label_rows(w: jax.Array, labels: jax.Array, class_axis_name: AxisName):
    """``w[labels]`` for global labels with ``w`` possibly sharded by class.

    Returns:
      The rows ``[batch, ...]`` (0 for a label no shard holds), and the labels local to this
      shard (out of range where another shard holds them).
    """
    local_count = w.shape[0]
    offset, _ = shard_offset(local_count, class_axis_name)
    # Widened (a no-op for the labels of _checks.integer_array) before the offset: uint8
    # labels minus an int32 offset, or compared with 256 classes, would wrap.
    local = _checks.widened(labels) - offset
    here = (local >= 0) & (local < local_count)
    rows = jnp.take(w, jnp.where(here, local, 0), axis=0)
    rows = jnp.where(here.reshape(here.shape + (1,) * (rows.ndim - 1)), rows, 0)
    if class_axis_name is not None:
        rows = jax.lax.psum(rows, class_axis_name)
    return rows, local


def _num_classes(w: jax.Array, class_axis_name: AxisName):
    """The number of classes over every shard of ``w``."""
    return shard_offset(w.shape[0], class_axis_name)[1]


def _same_devices(axis_name: AxisName, class_axis_name: AxisName) -> bool:
    """Whether the batch and the classes are split over the same mapped axes."""
    if axis_name is None or class_axis_name is None:
        return False
    batch_axes, class_axes = (
        frozenset([a] if isinstance(a, str) else a) for a in (axis_name, class_axis_name)
    )
    if batch_axes != class_axes and batch_axes & class_axes:
        raise ValueError(
            f"`axis_name` {axis_name!r} and `class_axis_name` {class_axis_name!r} share some "
            "axes but not all: split the batch and the classes over the same axes (Partial "
            "FC) or over disjoint ones."
        )
    return batch_axes == class_axes


def _partial_fc(x, labels, where, axis_name, class_axis_name):
    """The global batch when the batch and the classes are split over the same devices.

    As in Partial FC (An et al. 2021), every device then scores the embeddings of all
    devices against its own classes; the normalizers are summed over the class shards, and
    each device keeps its own rows' losses, reduced over ``axis_name`` as usual.

    Returns:
      ``(x, labels, where, local)``: the rows to score (all devices' or this one's) and
      ``local``, which takes this device's rows of a ``[rows]`` array.
    """
    if not _same_devices(axis_name, class_axis_name):
        return x, labels, where, lambda v: v
    rows = x.shape[0]
    where = _checks.mask(where, labels.shape)
    x, offset = gather_batch(x, axis_name)
    labels, _ = gather_batch(labels, axis_name)
    if where is not None:
        where, _ = gather_batch(where, axis_name)
    return x, labels, where, lambda v: jax.lax.dynamic_slice_in_dim(v, offset, rows)


def _check_labels(labels, w, class_axis_name, where, ignore_index=None) -> None:
    """Checked mode: every unmasked label is a (global) class id or ``ignore_index``."""
    mask = _checks.mask(where, labels.shape)
    _checks.class_ids(
        labels, _num_classes(w, class_axis_name), ignore_index=ignore_index, where=mask
    )


def _counted_rows(x, labels, w, where, class_axis_name, ignore_index=None):
    """The masking door of the heads: ``(mask, x)`` with the rows that do not count zeroed.

    A row counts if ``where`` keeps it and its label is a class id (not ``ignore_index``).
    The others are zeroed before any arithmetic: the class rows' gradient is a sum over
    the batch (``p.T @ x``, ``target - x``), where ``0 · NaN`` would be NaN.
    """
    valid = valid_class_ids(labels, _num_classes(w, class_axis_name))
    if ignore_index is not None:
        valid = valid & (labels != ignore_index)
    mask, (x,) = masked_inputs(where, labels.shape, x, counted=valid)
    return mask, x


def _others(rows, w, local_labels, bias, column_scale, chunk_size, class_axis_name):
    """log Σ over every non-target class (all shards) of ``s_j rows · w_j + b_j``."""
    local = lse_excluding_targets(
        rows, w, local_labels, bias, column_scale=column_scale, chunk_size=chunk_size
    )
    if class_axis_name is None:
        return local
    floor = jnp.finfo(local.dtype).min
    top = jax.lax.pmax(jax.lax.stop_gradient(jnp.maximum(local, floor)), class_axis_name)
    return top + jnp.log(jax.lax.psum(jnp.exp(local - top), class_axis_name))


def _margin_softmax(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    target_logit: Callable[[jax.Array, jax.Array], jax.Array],
    *,
    normalize_embeddings: bool,
    scale: ArrayLike | None,
    where: ArrayLike | None,
    reduction: str,
    chunk_size: int | None,
    axis_name: AxisName,
    class_axis_name: AxisName,
) -> jax.Array:
    """The shared path: ``target_logit(cos θ_y, row_scale)`` gives each loss its margin.

    Non-target logits are ``row_scale · cos θ_j``; ``row_scale`` is ``scale``, or ‖x‖ when
    ``scale`` is None (SphereFace's original form, with unnormalized embeddings).
    """
    x, w, labels = _checks.rows_and_classes(embeddings, centers, labels, "embeddings", "centers")
    _checks.chunk_size(chunk_size)
    x, labels, where, local = _partial_fc(x, labels, where, axis_name, class_axis_name)
    _check_labels(labels, w, class_axis_name, where)
    counted, x = _counted_rows(x, labels, w, where, class_axis_name)
    unit_x = _numerics.l2_normalize(x)
    if chunk_size is None:
        column_scale, class_rows = None, _numerics.l2_normalize(w)
    else:
        # cos θ_j = x̂ · w_j / ‖w_j‖: the kernel scales each class's column, so no
        # normalized copy of the centers (nor its gradient), as large as they are, is made.
        column_scale = 1 / jnp.maximum(_numerics.safe_norm(w), _numerics.NORM_EPS)
        class_rows = w
    if scale is None:
        row_scale = _numerics.safe_norm(x)
    else:
        row_scale = jnp.broadcast_to(jnp.asarray(scale, x.dtype), x.shape[:1])
    # Non-target logits row_scale · cos θ_j: from s·x̂, or from x itself when the scale is ‖x‖.
    rows = unit_x * row_scale[:, None] if normalize_embeddings or scale is not None else x
    target_rows, local_labels = _label_rows(w, labels, class_axis_name)
    cos_target = jnp.sum(unit_x * _numerics.l2_normalize(target_rows), axis=1)
    target = target_logit(jnp.clip(cos_target, -1.0, 1.0), row_scale)
    others = _others(
        rows, class_rows, local_labels, None, column_scale, chunk_size, class_axis_name
    )
    loss = jnp.logaddexp(others, target) - target
    return reduce_loss(local(loss), reduction, where=local(counted), axis_name=axis_name)


def _angle(cos_theta: jax.Array) -> jax.Array:
    return jnp.arccos(jnp.clip(cos_theta, -_COS_LIMIT, _COS_LIMIT))


_COMMON_ARGS = """
    Numerics: embeddings and centers are normalized by their norms floored at 1e-12, so a zero
    vector gives cosines of 0 rather than NaN, and ``cos θ_y`` is clipped to [−1, 1] (to
    ±(1 − 1e-6) before any ``arccos``, whose derivative is then at most about 700). The logits
    are the scale (``‖x‖`` for SphereFace without one) times bounded functions of the
    cosines and the normalizer is a log-sum-exp, so the loss is finite for finite inputs and
    scales well inside the float32 range. Rows masked by ``where`` or with a label out of
    range are replaced by 0 before any arithmetic: NaN or inf there reaches neither the value
    nor any gradient (the centers' included), and their own gradient is exactly 0.

    Args:
      embeddings: ``[batch, dim]`` features (any float dtype; L2-normalized inside).
      centers: ``[num_classes, dim]`` class weight rows (L2-normalized inside); with
        ``class_axis_name``, this device's slice of the classes.
      labels: ``[batch]`` integer class ids (global ids with ``class_axis_name``); labels
        outside ``[0, num_classes)`` are excluded.
{extra}      where: optional ``[batch]`` boolean mask.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      chunk_size: classes per block (static); the batch × classes logits are then never
        materialized, in the forward or the backward pass.
      axis_name: mapped axis over which the batch is split (global mean and sum).
      class_axis_name: mapped axis over which ``centers`` are split by class. The same
        axis as ``axis_name`` is Partial FC: each device scores every device's embeddings
        against its classes (an ``all_gather`` of ``[batch, dim]``, never of the centers).

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.
"""


def _document(extra: str):
    def decorate(fn):
        fn.__doc__ = fn.__doc__.replace("    {args}", _COMMON_ARGS.format(extra=extra).strip("\n"))
        return fn

    return decorate


@_document("      scale: the logit scale s; may be traced.\n")
def norm_softmax(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    *,
    scale: ArrayLike = 16.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
) -> jax.Array:
    r"""NormFace: softmax cross-entropy on scaled cosines (the "hypersphere" softmax).

    .. math::
      \ell_i = -\log \frac{e^{s \cos\theta_{y_i}}}{\sum_j e^{s \cos\theta_j}}

    where :math:`\theta_j` is the angle between embedding :math:`i` and center :math:`j`.
    Without a margin; the base that CosFace and ArcFace add their margins to.

    {args}

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x, w = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> round(float(jaxloss.norm_softmax(x, w, jnp.array([0]), scale=1.0)), 4)
      0.3133

    References:
      Wang, Xiang, Cheng and Yuille, "NormFace: L2 Hypersphere Embedding for Face
      Verification", 2017. https://arxiv.org/abs/1704.06369
    """
    scale = jnp.asarray(scale)
    return _margin_softmax(
        embeddings,
        centers,
        labels,
        lambda cos, s: s * cos,
        normalize_embeddings=True,
        scale=scale,
        where=where,
        reduction=reduction,
        chunk_size=chunk_size,
        axis_name=axis_name,
        class_axis_name=class_axis_name,
    )


@_document(
    "      scale: the logit scale s; may be traced.\n"
    "      margin: the additive cosine margin m; may be traced.\n"
)
def cosface(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    *,
    scale: ArrayLike = 64.0,
    margin: ArrayLike = 0.35,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
) -> jax.Array:
    r"""CosFace / AM-Softmax (alias :func:`am_softmax`): an additive margin on the cosine.

    .. math::
      t_i = s(\cos\theta_{y_i} - m), \qquad \text{other logits } s\cos\theta_j

    The target must beat every other class by ``m`` in cosine, which pulls each identity's
    embeddings together and pushes identities apart: face unlock compares a new face to an
    enrolled one by cosine, for people never seen in training.

    {args}

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x, w = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> round(float(jaxloss.cosface(x, w, jnp.array([0]), scale=1.0, margin=0.5)), 4)
      0.4741

    References:
      Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition", 2018.
      https://arxiv.org/abs/1801.09414 ; Wang, Cheng, Liu and Liu, "Additive Margin Softmax
      for Face Verification", 2018. https://arxiv.org/abs/1801.05599
    """
    margin = jnp.asarray(margin)
    return _margin_softmax(
        embeddings,
        centers,
        labels,
        lambda cos, s: s * (cos - margin),
        normalize_embeddings=True,
        scale=jnp.asarray(scale),
        where=where,
        reduction=reduction,
        chunk_size=chunk_size,
        axis_name=axis_name,
        class_axis_name=class_axis_name,
    )


am_softmax = cosface
"""Alias of :func:`cosface` (AM-Softmax and CosFace are the same loss)."""


@_document(
    "      scale: the logit scale s; may be traced.\n"
    "      margin: the additive angular margin m (radians); may be traced.\n"
    "      easy_margin: keep cos θ_y where cos θ_y <= 0 instead of the fallback (static).\n"
)
def arcface(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    *,
    scale: ArrayLike = 64.0,
    margin: ArrayLike = 0.5,
    easy_margin: bool = False,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
) -> jax.Array:
    r"""ArcFace: an additive margin on the angle.

    .. math::
      t_i = \begin{cases} s\cos(\theta_{y_i} + m) & \theta_{y_i} + m \le \pi \\
        s(\cos\theta_{y_i} - m \sin m) & \text{otherwise (InsightFace's fallback)}
        \end{cases}

    Past :math:`\theta + m = \pi`, :math:`\cos(\theta + m)` would *rise* again as the
    target gets worse; the fallback keeps the target logit decreasing. With
    ``easy_margin``, the margin applies only where :math:`\cos\theta_y > 0`. The angle comes
    from a clipped ``arccos``, so gradients stay finite at θ = 0 and θ = π.

    {args}

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x, w = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> round(float(jaxloss.arcface(x, w, jnp.array([0]), scale=1.0, margin=0.5)), 4)
      0.3479

    References:
      Deng, Guo, Xue and Zafeiriou, "ArcFace: Additive Angular Margin Loss for Deep Face
      Recognition", 2019. https://arxiv.org/abs/1801.07698
    """
    margin = jnp.asarray(margin)

    def target_logit(cos, s):
        with_margin = jnp.cos(_angle(cos) + margin)
        if easy_margin:
            return s * jnp.where(cos > 0, with_margin, cos)
        fits = cos > jnp.cos(jnp.pi - margin)  # θ + m < π
        return s * jnp.where(fits, with_margin, cos - margin * jnp.sin(margin))

    return _margin_softmax(
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


@_document(
    "      scale: the logit scale s; may be traced.\n"
    "      m1: the multiplicative angular margin (SphereFace's); may be traced.\n"
    "      m2: the additive angular margin (ArcFace's); may be traced.\n"
    "      m3: the additive cosine margin (CosFace's); may be traced.\n"
)
def combined_margin(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    *,
    scale: ArrayLike = 64.0,
    m1: ArrayLike = 1.0,
    m2: ArrayLike = 0.5,
    m3: ArrayLike = 0.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
) -> jax.Array:
    r"""The combined margin of InsightFace: SphereFace, ArcFace and CosFace in one.

    .. math::
      t_i = s\left(\cos(m_1 \theta_{y_i} + m_2) - m_3\right)

    ``(1, 0, 0)`` is NormFace, ``(1, m, 0)`` ArcFace without its fallback, ``(1, 0, m)``
    CosFace.

    {args}

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x, w = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> loss = jaxloss.combined_margin(x, w, jnp.array([0]), scale=1.0, m2=0.0, m3=0.5)
      >>> round(float(loss), 4)
      0.4741

    References:
      Deng, Guo, Xue and Zafeiriou, "ArcFace: Additive Angular Margin Loss for Deep Face
      Recognition", 2019, section 3.3. https://arxiv.org/abs/1801.07698
    """
    m1, m2, m3 = jnp.asarray(m1), jnp.asarray(m2), jnp.asarray(m3)
    return _margin_softmax(
        embeddings,
        centers,
        labels,
        lambda cos, s: s * (jnp.cos(m1 * _angle(cos) + m2) - m3),
        normalize_embeddings=True,
        scale=jnp.asarray(scale),
        where=where,
        reduction=reduction,
        chunk_size=chunk_size,
        axis_name=axis_name,
        class_axis_name=class_axis_name,
    )


def _chebyshev(cos: jax.Array, degree: int) -> jax.Array:
    """cos(degree · θ) as the Chebyshev polynomial T_degree(cos θ): smooth in cos θ."""
    previous, current = jnp.ones_like(cos), cos
    if degree == 0:
        return previous
    for _ in range(degree - 1):
        previous, current = current, 2 * cos * current - previous
    return current


@_document(
    "      margin: the integer angular multiplier m (static).\n"
    "      scale: None (logits scaled by ‖x‖, embeddings not normalized) or a fixed scale\n"
    "        (embeddings normalized); may be traced.\n"
    "      lam: λ, the weight of the plain cosine in the target logit; may be traced.\n"
)
def sphereface(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    *,
    margin: int = 4,
    scale: ArrayLike | None = None,
    lam: ArrayLike = 0.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
) -> jax.Array:
    r"""SphereFace (A-Softmax): a multiplicative angular margin.

    .. math::
      t_i = \|x_i\| \frac{\lambda\cos\theta_{y_i} + \psi(\theta_{y_i})}{1 + \lambda},
      \qquad \psi(\theta) = (-1)^k \cos(m\theta) - 2k,\ \theta \in
      \left[\tfrac{k\pi}{m}, \tfrac{(k+1)\pi}{m}\right]

    and the other logits :math:`\|x_i\| \cos\theta_j` (centers normalized, embeddings not).
    ψ is the monotonic extension of :math:`\cos(m\theta)` to :math:`[0, \pi]`;
    :math:`\cos(m\theta)` is computed as a Chebyshev polynomial of :math:`\cos\theta`, so its
    gradient is finite everywhere. The original trains with λ annealed from large to small.
    With ``scale`` set, embeddings are normalized and ``scale`` replaces :math:`\|x\|`.

    {args}

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x, w = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> round(float(jaxloss.sphereface(x, w, jnp.array([0]))), 4)
      0.3133

    References:
      Liu, Wen, Yu, Li, Raj and Song, "SphereFace: Deep Hypersphere Embedding for Face
      Recognition", 2017. https://arxiv.org/abs/1704.08063
    """
    if not isinstance(margin, int) or margin < 1:
        raise ValueError(f"`margin` must be a positive Python int, got {margin!r}.")
    lam = jnp.asarray(lam)

    def target_logit(cos, s):
        k = jax.lax.stop_gradient(jnp.floor(margin * _angle(cos) / jnp.pi))
        sign = 1 - 2 * jnp.mod(k, 2)
        psi = sign * _chebyshev(cos, margin) - 2 * k
        return s * (lam * cos + psi) / (1 + lam)

    return _margin_softmax(
        embeddings,
        centers,
        labels,
        target_logit,
        normalize_embeddings=False,
        scale=scale,
        where=where,
        reduction=reduction,
        chunk_size=chunk_size,
        axis_name=axis_name,
        class_axis_name=class_axis_name,
    )


def linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: ArrayLike = 0.0,
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""``cross_entropy(hidden @ weight.T + bias, labels)`` without the N × V logits.

    As ``torch.nn.functional.linear_cross_entropy``: the language-model head and its loss
    in one. With ``chunk_size`` the vocabulary is processed in blocks, so neither the
    forward nor the backward pass holds the ``[N, V]`` logits or their gradient (8 GiB for
    N = 8192, V = 131072 in float32). Label smoothing needs no extra pass:
    :math:`\sum_j z_{ij} = h_i \cdot \sum_j w_j + \sum_j b_j`.

    Numerics: finite whenever the logits ``h·w_j + b_j`` are (and, with label smoothing, their
    sum over the vocabulary): the normalizer is a max-shifted log-sum-exp (block by block with
    ``chunk_size``), accumulated in float32 (float64 for float64 inputs), so no exponential
    overflows. A mean with no counted rows is 0. Rows that do not count (masked by ``where``,
    ignored, or with a label outside the vocabulary) are replaced by 0 before any
    arithmetic: NaN or inf there reaches neither the value nor any gradient (``weight``'s
    included), and their own gradient is exactly 0.

    Args:
      hidden: ``[N, dim]`` hidden states (any float dtype; matmuls accumulate in float32).
      weight: ``[vocab, dim]`` output projection; with ``class_axis_name`` this device's
        slice of the vocabulary.
      labels: ``[N]`` integer token ids (global with ``class_axis_name``).
      bias: optional ``[vocab]`` bias (sharded like ``weight``).
      ignore_index: labels equal to it are excluded; labels outside the vocabulary always
        are.
      label_smoothing: ε in [0, 1]; may be traced.
      chunk_size: bounds the logits held at once (static), or None for the plain
        computation. For ``"mean"`` and ``"sum"``, when ``16 * chunk_size**2`` logits
        cover at least 256 rows (or the whole batch) of the vocabulary, rows go in blocks
        of that many with the gradients computed in the forward pass (three matmuls, as
        the plain computation; e.g. 512 rows at V = 32768, chunk_size = 1024). Otherwise
        (also for ``"none"`` and with ``class_axis_name``) the vocabulary goes in blocks
        of ``chunk_size`` entries and the backward pass recomputes each block's logits
        (four matmuls).
      axis_name: mapped axis over which the rows are split (global mean and sum).
      class_axis_name: mapped axis over which ``weight`` is split by vocabulary; the same
        axis as ``axis_name`` gathers every device's rows (as the margin heads do).
      where: optional ``[N]`` boolean mask.
      reduction: ``"mean"`` (over counted rows), ``"sum"`` or ``"none"`` (``[N]``).

    Returns:
      A float32 scalar, or the per-row losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> h, w = jnp.ones((2, 3)), jnp.zeros((5, 3))
      >>> round(float(jaxloss.linear_cross_entropy(h, w, jnp.array([1, 4]), chunk_size=2)), 4)
      1.6094
    """
    h, w, labels = _checks.rows_and_classes(hidden, weight, labels, "hidden", "weight")
    _checks.chunk_size(chunk_size)
    h, labels, where, local = _partial_fc(h, labels, where, axis_name, class_axis_name)
    _check_labels(labels, w, class_axis_name, where, ignore_index)
    counted, h = _counted_rows(h, labels, w, where, class_axis_name, ignore_index)
    b = None
    if bias is not None:
        b = _checks.vector_of_length(bias, w.shape[0], "bias", "one per vocabulary entry")
    target_rows, local_labels = _label_rows(w, labels, class_axis_name)
    dtype = accumulation_dtype(h, w)
    target = jnp.einsum("nd,nd->n", h, target_rows, preferred_element_type=dtype)
    if b is not None:
        target = target + _label_rows(b, labels, class_axis_name)[0]
    smoothing = not _checks.is_static_zero(label_smoothing)
    eps = jnp.asarray(label_smoothing, dtype) if smoothing else 0.0
    if smoothing:
        weight_sum, bias_sum, vocab = (
            jnp.sum(w, axis=0),
            jnp.sum(b) if b is not None else 0.0,
            w.shape[0],
        )
        if class_axis_name is not None:
            weight_sum = jax.lax.psum(weight_sum, class_axis_name)
            bias_sum = jax.lax.psum(bias_sum, class_axis_name)
            vocab = jax.lax.psum(vocab, class_axis_name)
        logit_sum = jnp.einsum("nd,d->n", h, weight_sum, preferred_element_type=dtype)
        mean_logit = (logit_sum + bias_sum) / vocab
    rows_per_block = _rows_per_block(h.shape[0], w.shape[0], chunk_size, reduction)
    if rows_per_block is not None and class_axis_name is None:
        # loss_i = L_i - (1 - ε) t_i - ε mean_j z_ij with L_i the full log-normalizer, whose
        # gradient the row-blocked kernel computes in its forward pass (three matmuls).
        coefficients = linear_weights(counted, h.shape[:1], reduction, axis_name=axis_name)
        normalizers = weighted_lse_sum(h, w, b, coefficients, rows_per_block)
        rest = -(1 - eps) * target - (eps * mean_logit if smoothing else 0.0)
        return reduce_loss(normalizers, "sum", axis_name=axis_name) + reduce_loss(
            rest, reduction, where=counted, axis_name=axis_name
        )
    others = _others(h, w, local_labels, b, None, chunk_size, class_axis_name)
    log_normalizer = jnp.logaddexp(others, target)
    loss = log_normalizer - target
    if smoothing:
        loss = (1 - eps) * loss + eps * (log_normalizer - mean_logit)
    return reduce_loss(local(loss), reduction, where=local(counted), axis_name=axis_name)


# The row-blocked path holds up to this many logits per chunk_size², as [rows, vocab], and is
# taken when that is at least _MIN_ROWS rows (or the whole batch): fewer rows stream the
# weights too often to beat four matmuls in class blocks (measured on CPU at V = 32768: 512
# rows 0.85x the materialized time, 256 rows 0.92x, 128 rows 1.08x, 64 rows 1.28x).
_ROW_BUDGET = 16
_MIN_ROWS = 256


def _rows_per_block(num_rows: int, vocab: int, chunk_size: int | None, reduction: str):
    """Rows per block for ``weighted_lse_sum``, or None for the class-blocked kernel."""
    if chunk_size is None or reduction not in ("mean", "sum"):
        return None
    rows = min(num_rows, _ROW_BUDGET * int(chunk_size) ** 2 // vocab)
    return rows if rows >= min(num_rows, _MIN_ROWS) and rows > 0 else None


def center_loss(
    features: ArrayLike,
    labels: ArrayLike,
    centers: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Center loss: half the squared distance of each feature to its class center.

    .. math::
      \ell_i = \tfrac12 \|x_i - c_{y_i}\|^2

    Added to a softmax loss, it makes each class compact. The centers are not learned by
    gradient descent in the paper but moved by :func:`center_update`; pass them through
    ``jax.lax.stop_gradient`` (or exclude them from the optimizer) to follow it.

    Numerics: nothing is clamped; a term is +inf only where ``‖x − c‖²`` passes the float32
    maximum (distances beyond ~1.8e19). Rows masked by ``where`` or with labels outside
    ``[0, num_classes)`` are replaced by 0 before any arithmetic and left out of the value:
    NaN or inf there reaches no gradient (the centers' included), and theirs is exactly 0.

    Args:
      features: ``[batch, dim]``.
      labels: ``[batch]`` integer class ids; labels outside ``[0, num_classes)`` are
        excluded.
      centers: ``[num_classes, dim]``.
      where: optional ``[batch]`` boolean mask.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis over which the batch is split (global mean and sum).

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> c = jnp.array([[0.0, 0.0], [1.0, 1.0]])
      >>> float(jaxloss.center_loss(jnp.array([[3.0, 4.0]]), jnp.array([0]), c))
      12.5

    References:
      Wen, Zhang, Li and Qiao, "A Discriminative Feature Learning Approach for Deep Face
      Recognition", ECCV 2016. https://doi.org/10.1007/978-3-319-46478-7_31
    """
    x, c, labels = _checks.rows_and_classes(features, centers, labels, "features", "centers")
    _check_labels(labels, c, None, where)
    counted, x = _counted_rows(x, labels, c, where, None)
    target, _ = _label_rows(c, labels, None)
    loss = 0.5 * jnp.sum(jnp.square(x - target), axis=1)
    return reduce_loss(loss, reduction, where=counted, axis_name=axis_name)


def center_update(
    centers: ArrayLike,
    features: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: ArrayLike = 0.5,
    where: ArrayLike | None = None,
    axis_name: AxisName = None,
) -> jax.Array:
    r"""The center update rule of Wen et al. (2016).

    .. math::
      c_j \leftarrow c_j - \alpha \frac{\sum_{i: y_i = j} (c_j - x_i)}{1 + n_j}

    with :math:`n_j` the number of (unmasked) examples of class :math:`j` in the batch;
    classes absent from the batch do not move.

    Numerics: the step divides by ``1 + n_j ≥ 1``, so it is finite for finite inputs (unless
    the per-class sums overflow float32), and classes absent from the batch get a step of
    exactly 0. Masked rows and labels outside ``[0, num_classes)`` are replaced by 0 before the
    sums, so a NaN or inf in them changes nothing.

    Args:
      centers: ``[num_classes, dim]`` current centers.
      features: ``[batch, dim]`` features (treated as constants).
      labels: ``[batch]`` integer class ids; others are ignored.
      alpha: the center learning rate; may be traced.
      where: optional ``[batch]`` boolean mask of the examples that count.
      axis_name: mapped axis (or axes) over which the batch is split (the centers are
        replicated): the counts and sums are those of the global batch, so every device
        computes the same new centers.

    Returns:
      The new centers, ``[num_classes, dim]``, in the dtype of ``centers``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> c = jnp.zeros((2, 2))
      >>> jaxloss.center_update(c, jnp.array([[2.0, 2.0]]), jnp.array([1]), alpha=1.0).tolist()
      [[0.0, 0.0], [1.0, 1.0]]
    """
    centers_in = jnp.asarray(centers)
    x, c, labels = _checks.rows_and_classes(features, centers, labels, "features", "centers")
    _check_labels(labels, c, None, where)
    # Zeroed, not multiplied by 0: a NaN in a masked row must not reach the sums.
    counted, x = _counted_rows(jax.lax.stop_gradient(x), labels, c, where, None)
    safe = jnp.where(counted, labels, 0)
    counts = jax.ops.segment_sum(counted.astype(c.dtype), safe, num_segments=c.shape[0])
    feature_sums = jax.ops.segment_sum(x, safe, num_segments=c.shape[0])
    counts, feature_sums = _global_sum((counts, feature_sums), axis_name)
    delta = (counts[:, None] * c - feature_sums) / (1 + counts[:, None])
    return (c - jnp.asarray(alpha, c.dtype) * delta).astype(centers_in.dtype)
