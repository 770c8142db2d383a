"""Topology-preserving segmentation losses: clDice, on soft skeletons.

Overlap losses count pixels, so a one-pixel gap that cuts a vessel in two costs almost
nothing; clDice compares the centre lines (skeletons) of prediction and target instead,
which a break or a spurious bridge changes a lot. The skeleton is a differentiable soft
one, from iterated min and max pooling, so the loss trains any segmenter of tubular
structures (vessels, neurons, roads).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._kernels.pools import window_extremum
from jaxloss._reduce import reduce_loss, safe_divide
from jaxloss._sharding import AxisName
from jaxloss.dense.overlap import _overlap_ratio, _probs_and_targets


def _soft_erode(x: jax.Array) -> jax.Array:
    """Soft erosion of ``x`` ``[batch, ..., channels]``: the minimum over a pixel and its
    two neighbours along each spatial axis (the minimum of the 3×1 and 1×3 min pools;
    3×1×1, 1×3×1 and 1×1×3 in 3-D). A border pixel's missing neighbour repeats the pixel:
    torch's pooling with ``padding=1``, as MONAI's min pool ``−max_pool(−x)``."""
    return window_extremum(x, tuple(range(1, x.ndim - 1)), largest=False)


def _soft_dilate(x: jax.Array) -> jax.Array:
    """Soft dilation: the 3×3 (3×3×3 in 3-D) max pool, one axis at a time."""
    for axis in range(1, x.ndim - 1):
        x = window_extremum(x, (axis,), largest=True)
    return x


def _soft_skeleton(x: jax.Array, num_iters: int) -> jax.Array:
    """Shit et al.'s soft skeleton of ``x`` ``[batch, ..., channels]`` in ``[0, 1]``.

    ``skel = relu(x − open(x))``, then ``num_iters`` times: ``x ← erode(x)``,
    ``δ = relu(x − open(x))``, ``skel ← skel + relu(δ − skel·δ)``, with
    ``open = dilate ∘ erode``. The first step is the update from ``skel = 0``, so all
    ``num_iters + 1`` are one loop body; the erosion inside ``open(x)`` is the next
    step's ``erode(x)``, computed once: ``num_iters + 1`` erosions, not ``2·num_iters + 1``.
    """

    def step(_: jax.Array, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        image, skeleton = carry
        eroded = _soft_erode(image)
        delta = jax.nn.relu(image - _soft_dilate(eroded))
        return eroded, skeleton + jax.nn.relu(delta - skeleton * delta)

    # A loop: unrolled, XLA's compile time grows faster than num_iters (seconds at 6). The
    # input enters the loop as it is: with the first step outside, XLA's CPU backend at -O0
    # (JAX_DISABLE_MOST_OPTIMIZATIONS, jax 0.10.2) returned wrong gradients after a division.
    # Each step is rematerialized in the backward pass (``jax.checkpoint``): the loop keeps
    # only its two carries per step, not every pool's chosen neighbours and intermediate
    # maps (measured at 2 x 64³ x 4, value and gradient: 194 MiB of XLA temp memory instead
    # of 326, for 1.15-1.3x the time).
    _, skeleton = lax.fori_loop(0, num_iters + 1, jax.checkpoint(step), (x, jnp.zeros_like(x)))
    return skeleton


def soft_cldice(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    num_iters: int = 3,
    smooth_nr: ArrayLike = 1.0,
    smooth_dr: ArrayLike = 1.0,
    smooth: ArrayLike = 1e-4,
    include_background: bool = True,
    from_logits: str | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Soft clDice loss per sample (Shit et al. 2021), as MONAI's ``SoftclDiceLoss``.

    .. math::
      \ell_b = 1 - \frac{2\, T_{prec} T_{sens}}{T_{prec} + T_{sens} + s}, \quad
      T_{prec} = \frac{\sum_{i,c} S(p)_{b,i,c}\, t_{b,i,c} + s_{nr}}
                      {\sum_{i,c} S(p)_{b,i,c} + s_{dr}}, \quad
      T_{sens} = \frac{\sum_{i,c} S(t)_{b,i,c}\, p_{b,i,c} + s_{nr}}
                      {\sum_{i,c} S(t)_{b,i,c} + s_{dr}}

    summed over every pixel (voxel) ``i`` and class ``c`` of sample ``b``. ``S`` is the
    soft skeleton of each class map: ``num_iters`` rounds of soft erosion (the minimum over
    a pixel and its axis neighbours) and opening (erosion then a 3×3, 3×3×3 in 3-D, max
    pool), keeping what each opening removes. ``T_prec`` is the fraction of the predicted
    centre line inside the target, ``T_sens`` that of the target's centre line inside the
    prediction; the loss is one minus their harmonic mean. ``num_iters`` should reach the
    largest radius of the structures: a thicker one keeps a band, not a line.

    MONAI's ``SoftclDiceLoss(iter_=k, smooth_nr=n, smooth_dr=d, smooth=s)`` is
    ``soft_cldice(probs, targets, num_iters=k, smooth_nr=n, smooth_dr=d, smooth=s)`` with
    channels last and the same ``include_background``, ``reduction`` (MONAI's ``"none"``
    is also ``[batch]``) and activation (``sigmoid=True`` is ``from_logits="sigmoid"``,
    ``softmax=True`` ``"softmax"``; ``to_onehot_y=True`` takes integer labels
    ``[batch, ...]``). MONAI's ``SoftDiceclDiceLoss(alpha=a)`` is
    ``(1 - a) * dice(probs, targets, smooth_nr=n, smooth_dr=d) + a * soft_cldice(probs,
    targets, smooth_nr=n, smooth_dr=d, smooth=s)`` for ``"mean"`` and ``"sum"`` (its
    Dice term is per (sample, class)).

    The authors' code (one value for the whole batch, no ``smooth`` in the harmonic mean,
    ``exclude_background`` dropping class 0) sums over the batch too: it is this loss of
    the batch folded into the class axis, where each map keeps its own skeleton,
    ``soft_cldice(fold(probs), fold(targets), smooth_nr=s, smooth_dr=s, smooth=0.0)`` with
    ``fold = lambda x: jnp.moveaxis(x, 0, -2).reshape(1, *x.shape[1:-1], -1)`` on one-hot
    targets (sliced ``[..., 1:]`` first for ``exclude_background``).

    With ``smooth_dr = 0`` an empty skeleton gives the ratio 1 (nothing to be wrong
    about), as ``dice`` does; with ``smooth = 0`` and both ratios 0 the loss is 1.

    Gradients equal MONAI's except at ties inside a pooling window (maps of a few distinct
    values, hard or quantized probabilities): a tie sends the whole gradient to one pixel
    (the pixel itself first, a subgradient), where torch's ``min`` of the erosion splits it
    between the tied pixels. The value is the same; the gradient's sum too.

    Args:
      probs: ``[batch, ..., num_classes]`` probabilities (logits with ``from_logits``),
        channel last; ``[batch, height, width, C]`` or ``[batch, depth, height, width, C]``
        (any number of spatial axes works).
      targets: the same shape (binary or soft masks), or integer labels ``[batch, ...]``.
        A pixel whose label is not in ``[0, num_classes)`` (255 for "void") is 0 in every
        class map of both, so it acts as background of the skeletons.
      num_iters: erosion rounds of the skeleton (MONAI's ``iter_``), a static int ≥ 0.
      smooth_nr: s_nr, added to the numerators of ``T_prec`` and ``T_sens``.
      smooth_dr: s_dr, added to their denominators.
      smooth: s, added to the denominator of the harmonic mean.
      include_background: if False, class 0 is dropped before the skeletons.
      from_logits: None for probabilities; ``"sigmoid"`` or ``"softmax"`` for logits, the
        activation applied before ``include_background``.
      where: optional boolean mask broadcastable to ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-sample losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> line = jnp.zeros((1, 3, 3, 1)).at[0, 1, :, 0].set(1.0)  # a one-pixel line
      >>> # a thin line is its own skeleton: T_prec = 1.5 / 1.5, T_sens = 1.5 / 3
      >>> # 1 − 2·0.5 / (1.5 + 1e-4) = 0.3334
      >>> round(float(jaxloss.soft_cldice(0.5 * line, line, smooth_nr=0.0,
      ...                                 smooth_dr=0.0)), 4)
      0.3334

    References:
      Shit et al., "clDice — a Novel Topology-Preserving Loss Function for Tubular
      Structure Segmentation", CVPR 2021. https://arxiv.org/abs/2003.07311
    """
    num_iters = _checks.static_int(num_iters, "num_iters", low=0)  # NumPy's ints too
    _checks.in_range(smooth_nr, "smooth_nr", low=0)
    _checks.in_range(smooth_dr, "smooth_dr", low=0)
    _checks.in_range(smooth, "smooth", low=0)
    p, t, axes, mask = _probs_and_targets(
        probs,
        targets,
        include_background=include_background,
        from_logits=from_logits,
        where=where,
        per_class=False,
    )
    if p.ndim < 3:
        raise ValueError(
            f"`probs` must be [batch, ..., num_classes] with a spatial axis, got {p.shape}."
        )
    axes = (*axes, -1)
    dtype = p.dtype
    smooth_nr, smooth_dr = jnp.asarray(smooth_nr, dtype), jnp.asarray(smooth_dr, dtype)
    skeleton_p, skeleton_t = _soft_skeleton(p, num_iters), _soft_skeleton(t, num_iters)
    precision = _overlap_ratio(
        jnp.sum(skeleton_p * t, axis=axes) + smooth_nr, jnp.sum(skeleton_p, axis=axes) + smooth_dr
    )
    sensitivity = _overlap_ratio(
        jnp.sum(skeleton_t * p, axis=axes) + smooth_nr, jnp.sum(skeleton_t, axis=axes) + smooth_dr
    )
    loss = 1 - safe_divide(
        2 * precision * sensitivity, precision + sensitivity + jnp.asarray(smooth, dtype)
    )
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)
