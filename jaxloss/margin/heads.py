"""The margin softmax heads: NormFace, CosFace (AM-Softmax), ArcFace, SphereFace, combined.

Each is ``classes.margin_softmax`` with its own target logit ``t(cos θ_y, scale)``: the
heads differ in their margin alone, and share everything else, stated here once:

* **Inputs.** ``embeddings [batch, dim]`` and the class rows ``centers [num_classes, dim]``
  are L2-normalized inside (SphereFace without a scale keeps the embeddings' norm);
  ``labels [batch]`` are integer class ids, global ids when ``class_axis_name`` splits the
  classes, and labels outside ``[0, num_classes)`` are excluded like masked rows.
* **Numerics.** Norms are floored at 1e-12, so a zero vector gives cosines of 0 rather than
  NaN, and ``cos θ_y`` is clipped to [−1, 1] before any ``arccos``, whose derivative is
  taken at most ±(1 − 1e-6), so it is at most about 700 (0 closer to ±1; the angle itself
  is not moved: θ = 0 gives ArcFace's cos m exactly). The logits are the scale (``‖x‖``
  for SphereFace without one) times bounded functions of the cosines and the normalizer
  is a log-sum-exp, so the loss is finite for finite inputs and scales well inside the float32
  range. Rows masked by ``where`` or with a label out of range are replaced by 0 before
  any arithmetic: NaN or inf there reaches neither the value nor any gradient (the
  centers' included), and their own gradient is exactly 0.
* **Per-example margins.** ``cosface``'s and ``arcface``'s ``margin`` and
  ``combined_margin``'s ``m1``, ``m2``, ``m3`` may be ``[batch]`` arrays, one margin per
  example; they go with their rows, also under Partial FC.
* **Options.** ``where [batch]``, ``reduction`` (``"none"``: ``[batch]``), ``chunk_size``,
  ``axis_name`` and ``class_axis_name`` follow the conventions page; the same
  ``class_axis_name`` as ``axis_name`` is Partial FC (each device scores every device's
  embeddings against its classes: an ``all_gather`` of ``[batch, dim]``, never of the
  centers).

``HEADS`` lists them, for ``jaxloss.nn``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._sharding import AxisName
from jaxloss.margin.classes import TargetRows, margin_softmax


def per_example(**options: ArrayLike) -> dict[str, jax.Array]:
    """The options given per example (``[batch]`` arrays), for ``margin_softmax``'s
    ``per_row``: they travel with their rows (gathered with them under Partial FC), where a
    closed-over ``[batch]`` array would meet every device's rows. Scalars stay out."""
    return {name: jnp.asarray(v) for name, v in options.items() if jnp.ndim(v) > 0}


def check_angle(margin: ArrayLike) -> None:
    """An angular margin lies in (−π, π) radians (every entry of a concrete array; a traced
    one in checked mode): one in degrees (PML's 28.6) turned cos(θ + m) into a bonus, a loss
    of 0 with no gradient."""
    _checks.in_range(margin, "margin", low=-math.pi, high=math.pi, low_open=True, high_open=True)


def arc_margin(cos: jax.Array, margin: jax.Array, easy_margin: bool = False) -> jax.Array:
    """ArcFace's target cosine: cos(θ + m), and cos θ − m·sin m past θ + m = π (InsightFace's
    fallback, which keeps it decreasing as θ grows); with ``easy_margin``, cos θ where
    cos θ <= 0 instead. CurricularFace's, Sub-center ArcFace's and MagFace's target too."""
    with_margin = jnp.cos(_numerics.angle(cos) + margin)
    if easy_margin:
        return jnp.where(cos > 0, with_margin, cos)
    # θ + m < π. A negative margin (Liu et al. 2020) never passes π: cos θ > cos(π − m)
    # alone read θ > π − |m| as past it, and m sin m, even in m, then made it +|m|'s target.
    fits = (margin <= 0) | (cos > jnp.cos(jnp.pi - margin))
    return jnp.where(fits, with_margin, cos - margin * jnp.sin(margin))


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

    Numerics, masking and the options below: as every margin head
    (:mod:`jaxloss.margin.heads`).

    Args:
      embeddings: ``[batch, dim]``.
      centers: ``[num_classes, dim]`` class rows.
      labels: ``[batch]`` integer class ids.
      scale: the logit scale s > 0; may be traced.
      where: optional ``[batch]`` boolean mask.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      chunk_size: classes per block (static).
      axis_name: mapped axis of the batch.
      class_axis_name: mapped axis of the classes.

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

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
    return margin_softmax(
        embeddings,
        centers,
        labels,
        lambda cos, s, _: s * cos,
        normalize_embeddings=True,
        scale=scale,
        where=where,
        reduction=reduction,
        chunk_size=chunk_size,
        axis_name=axis_name,
        class_axis_name=class_axis_name,
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

    Numerics, masking and the options below: as every margin head
    (:mod:`jaxloss.margin.heads`).

    Args:
      embeddings: ``[batch, dim]``.
      centers: ``[num_classes, dim]`` class rows.
      labels: ``[batch]`` integer class ids.
      scale: the logit scale s > 0; may be traced.
      margin: the additive cosine margin m, scalar or ``[batch]`` (a margin per example);
        may be traced.
      where: optional ``[batch]`` boolean mask.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      chunk_size: classes per block (static).
      axis_name: mapped axis of the batch.
      class_axis_name: mapped axis of the classes.

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

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
    per_row = per_example(margin=margin)
    return margin_softmax(
        embeddings,
        centers,
        labels,
        lambda cos, s, rows: s * (cos - rows.values.get("margin", jnp.asarray(margin))),
        per_row=per_row,
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

    Numerics, masking and the options below: as every margin head
    (:mod:`jaxloss.margin.heads`).

    Args:
      embeddings: ``[batch, dim]``.
      centers: ``[num_classes, dim]`` class rows.
      labels: ``[batch]`` integer class ids.
      scale: the logit scale s > 0; may be traced.
      margin: the additive angular margin m (radians, in (−π, π)), scalar or ``[batch]`` (a
        margin per example, as MagFace's and ElasticFace's); may be traced.
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
      >>> x, w = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> round(float(jaxloss.arcface(x, w, jnp.array([0]), scale=1.0, margin=0.5)), 4)
      0.3477

    References:
      Deng, Guo, Xue and Zafeiriou, "ArcFace: Additive Angular Margin Loss for Deep Face
      Recognition", 2019. https://arxiv.org/abs/1801.07698
    """
    check_angle(margin)
    per_row = per_example(margin=margin)

    def target_logit(cos: jax.Array, s: jax.Array, rows: TargetRows) -> jax.Array:
        return s * arc_margin(cos, rows.values.get("margin", jnp.asarray(margin)), easy_margin)

    return margin_softmax(
        embeddings,
        centers,
        labels,
        target_logit,
        per_row=per_row,
        normalize_embeddings=True,
        scale=jnp.asarray(scale),
        where=where,
        reduction=reduction,
        chunk_size=chunk_size,
        axis_name=axis_name,
        class_axis_name=class_axis_name,
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

    Numerics, masking and the options below: as every margin head
    (:mod:`jaxloss.margin.heads`).

    Args:
      embeddings: ``[batch, dim]``.
      centers: ``[num_classes, dim]`` class rows.
      labels: ``[batch]`` integer class ids.
      scale: the logit scale s > 0; may be traced.
      m1: the multiplicative angular margin (SphereFace's); may be traced.
      m2: the additive angular margin (ArcFace's); may be traced.
      m3: the additive cosine margin (CosFace's); may be traced. Each of m1, m2, m3 may
        be a scalar or ``[batch]`` (margins per example).
      where: optional ``[batch]`` boolean mask.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      chunk_size: classes per block (static).
      axis_name: mapped axis of the batch.
      class_axis_name: mapped axis of the classes.

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

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
    margins = {"m1": m1, "m2": m2, "m3": m3}
    per_row = per_example(**margins)

    def target_logit(cos: jax.Array, s: jax.Array, rows: TargetRows) -> jax.Array:
        m1, m2, m3 = (rows.values.get(k, jnp.asarray(v)) for k, v in margins.items())
        return s * (jnp.cos(m1 * _numerics.angle(cos) + m2) - m3)

    return margin_softmax(
        embeddings,
        centers,
        labels,
        target_logit,
        per_row=per_row,
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

    Numerics, masking and the options below: as every margin head
    (:mod:`jaxloss.margin.heads`).

    Args:
      embeddings: ``[batch, dim]``.
      centers: ``[num_classes, dim]`` class rows.
      labels: ``[batch]`` integer class ids.
      margin: the integer angular multiplier m (static).
      scale: None (logits scaled by ‖x‖, embeddings not normalized) or a fixed scale > 0
        (embeddings normalized); may be traced.
      lam: λ ≥ 0, the weight of the plain cosine in the target logit; may be traced.
      where: optional ``[batch]`` boolean mask.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      chunk_size: classes per block (static).
      axis_name: mapped axis of the batch.
      class_axis_name: mapped axis of the classes.

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x, w = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> round(float(jaxloss.sphereface(x, w, jnp.array([0]))), 4)
      0.3133

    References:
      Liu, Wen, Yu, Li, Raj and Song, "SphereFace: Deep Hypersphere Embedding for Face
      Recognition", 2017. https://arxiv.org/abs/1704.08063
    """
    _checks.in_range(lam, "lam", low=0)
    margin = _checks.static_int(margin, "margin")
    lam = jnp.asarray(lam)

    def target_logit(cos: jax.Array, s: jax.Array, _: TargetRows) -> jax.Array:
        k = jax.lax.stop_gradient(jnp.floor(margin * _numerics.angle(cos) / jnp.pi))
        sign = 1 - 2 * jnp.mod(k, 2)
        psi = sign * _chebyshev(cos, margin) - 2 * k
        return s * (lam * cos + psi) / (1 + lam)

    return margin_softmax(
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


HEADS: tuple[Callable[..., jax.Array], ...] = (
    norm_softmax,
    cosface,
    arcface,
    sphereface,
    combined_margin,
)
"""The margin heads (``am_softmax`` is ``cosface``): the choices of ``nn.MarginSoftmaxHead``."""
