"""Lovász losses of segmentation: the Lovász-Softmax and Lovász hinge losses.

The Jaccard loss (1 − IoU) of a set of mispredicted pixels is submodular, so its Lovász
extension is a convex, piecewise-linear function of the per-pixel errors that equals the
Jaccard loss at 0/1 errors: sort the errors in decreasing order and weigh each by how much
the Jaccard loss grows when its pixel joins the mistakes. The order is piecewise constant,
so the gradient flows through the errors alone.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _labels, _numerics
from jaxloss._labels import counted_labels
from jaxloss._reduce import reduce_loss, safe_divide, zero_masked
from jaxloss._sharding import AxisName, gather_batch, global_sum
from jaxloss.dense.overlap import _overlap_ratio

CLASS_SETS = ("present", "all")


def _jaccard_steps(errors: jax.Array, foreground: jax.Array, counted: jax.Array) -> jax.Array:
    """The Lovász weights of one set of pixels ``[n]``, in the pixels' own order.

    Berman et al.'s ``lovasz_grad``: with the errors sorted in decreasing order (ties kept
    in pixel order), the k-th weight is the growth of the Jaccard loss
    ``1 − |F \\ M_k| / |F ∪ M_k|`` of the foreground ``F`` when the first k pixels are the
    mistakes ``M_k``. A pixel that is not counted adds to neither count, so its weight is 0
    and the others' weights are those of the set without it: leaving it in is the same as
    dropping it. The counts are integers, exact however many pixels there are.
    """
    order = jnp.argsort(errors, descending=True, stable=True)
    fg = foreground[order].astype(jnp.int32)
    background = (counted & ~foreground)[order].astype(jnp.int32)
    total = jnp.sum(fg)
    intersection = (total - jnp.cumsum(fg)).astype(errors.dtype)
    union = (total + jnp.cumsum(background)).astype(errors.dtype)
    # An empty union (only uncounted pixels so far, no foreground) is an empty mistake set.
    jaccard = 1 - _overlap_ratio(intersection, union)
    steps = jnp.diff(jaccard, prepend=jnp.zeros((1,), jaccard.dtype))
    return jnp.zeros_like(steps).at[order].set(steps, unique_indices=True)


def _lovasz_sums(
    errors: jax.Array,
    foreground: jax.Array,
    counted: jax.Array,
    *,
    per_image: bool,
    hinge: bool,
    axis_name: AxisName,
) -> jax.Array:
    """The Lovász extension of each class's Jaccard loss at ``errors`` ``[batch, pixels,
    classes]``: per (image, class) ``[batch, classes]``, or per class over the whole batch
    of every device ``[classes]``.

    Each is ``Σ_i f(e_i) w_i`` with the weights of the sorted errors (``_jaccard_steps``)
    held constant, ``f`` the identity or, for the hinge, ``relu`` (applied after the sort,
    as Berman et al.). Over the batch the errors of every device are gathered (without
    gradient) for one global sort; each device then sums its own pixels' terms.
    """
    weigh = jnp.vectorize(_jaccard_steps, signature="(n),(n),(n)->(n)")
    sorted_errors = jax.lax.stop_gradient(errors)
    if per_image:
        weights = weigh(*(jnp.moveaxis(a, 1, -1) for a in (sorted_errors, foreground, counted)))
        weights = jnp.moveaxis(weights, -1, 1)
        axes: tuple[int, ...] = (1,)
    else:
        batch, num_classes = errors.shape[0], errors.shape[-1]
        gathered = [gather_batch(a, axis_name) for a in (sorted_errors, foreground, counted)]
        offset = gathered[0][1]
        flat = (a.reshape(-1, num_classes).T for a, _ in gathered)
        weights = weigh(*flat).T.reshape(gathered[0][0].shape)
        weights = jax.lax.dynamic_slice_in_dim(weights, offset, batch, axis=0)
        axes = (0, 1)
    values = jax.nn.relu(errors) if hinge else errors
    sums = jnp.sum(values * weights, axis=axes)
    return sums if per_image else global_sum(sums, axis_name)


def _counted_pixels(
    labels: ArrayLike,
    shape: tuple[int, ...],
    num_classes: int,
    ignore_index: int | None,
    where: ArrayLike | None,
) -> tuple[jax.Array, jax.Array]:
    """Labels ``[batch, pixels]`` and the pixels that count: class ids other than
    ``ignore_index``, in the images ``where`` keeps."""
    labels = _checks.integer_array(labels, "labels")
    if labels.shape != shape:
        raise ValueError(f"`labels` must have shape {shape}, got {labels.shape}.")
    mask = _checks.mask(where, shape[:1])
    counted = counted_labels(labels, num_classes, ignore_index)
    if mask is not None:
        counted = counted & mask.reshape(mask.shape + (1,) * (counted.ndim - 1))
    pixels = (shape[0], math.prod(shape[1:]))  # not -1: the batch may be empty
    return labels.reshape(pixels), counted.reshape(pixels)


def _reduced(
    sums: jax.Array,
    counts: jax.Array,
    *,
    per_image: bool,
    reduction: str,
    axis_name: AxisName,
) -> jax.Array:
    """Reduces the sums of the classes chosen by their pixel counts (nonzero).

    Per image, each image's loss is the mean of its chosen classes' sums ``[batch]`` (an
    image with none is left out), reduced over the batch. Over the batch, the sums are
    already global and are reduced over the chosen classes of every device.
    """
    if not per_image:
        return reduce_loss(sums, reduction, where=global_sum(counts, axis_name) > 0)
    chosen = counts > 0
    loss = safe_divide(jnp.sum(jnp.where(chosen, sums, 0), axis=-1), jnp.sum(chosen, axis=-1))
    return reduce_loss(loss, reduction, where=jnp.any(chosen, axis=-1), axis_name=axis_name)


def lovasz_softmax(
    probs: ArrayLike,
    labels: ArrayLike,
    *,
    classes: str = "present",
    per_image: bool = True,
    ignore_index: int | None = None,
    from_logits: str | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Lovász-Softmax loss: the Lovász extension of the Jaccard (IoU) loss of each class.

    .. math::
      \ell = \frac{1}{|\mathcal{C}|} \sum_{c \in \mathcal{C}} \sum_{k=1}^{n}
             m_{c, \pi_c(k)} \, \big(\Delta_c(M_{c,k}) - \Delta_c(M_{c,k-1})\big),
      \qquad m_{c,i} = \big|[y_i = c] - p_{i,c}\big|

    over the pixels ``i`` of an image (or of the batch), where ``π_c`` sorts the errors
    ``m_c`` in decreasing order, ``M_{c,k}`` holds its first k pixels and
    ``Δ_c(M) = 1 − |F_c \ M| / |F_c ∪ M|`` is the Jaccard loss of the class-``c``
    foreground ``F_c`` with mistakes ``M``. At 0/1 errors this is ``1 − IoU``; in between
    it is the tightest convex interpolation, so it optimizes the mean IoU directly. The
    gradient flows through the sorted errors (the order is piecewise constant).

    ``classes="present"`` averages over the classes present in the labels of the image
    (``"all"``: over every class; an absent class then costs its largest probability).
    ``per_image=True`` scores each image on its own, as kornia and Berman et al.'s
    ``lovasz_hinge``; Berman et al.'s ``lovasz_softmax`` defaults to ``per_image=False``,
    which scores the whole batch as one set of pixels (with ``axis_name``, the batch of
    every device: the errors are gathered for one global sort, which costs the memory of
    the global batch's errors on each device).

    Args:
      probs: ``[batch, ..., num_classes]`` probabilities (logits with ``from_logits``),
        channel last; any number of spatial axes.
      labels: integer labels ``[batch, ...]``. Pixels whose label is ``ignore_index`` or
        outside ``[0, num_classes)`` are left out, exactly as if they were not there.
      classes: ``"present"`` or ``"all"``: the classes averaged.
      per_image: one loss per image, or one over the whole batch.
      ignore_index: a label value to leave out, or None.
      from_logits: None for probabilities, ``"softmax"`` for logits.
      where: optional boolean mask ``[batch]`` of the images that count (with
        ``per_image=False``, whose pixels join the set).
      reduction: ``"mean"``, ``"sum"`` or ``"none"``. ``per_image=True``: ``"none"`` is
        ``[batch]`` and the mean is over the images with a class to average (an image
        with no counted pixel is left out). ``per_image=False``: ``"none"`` holds the
        ``[num_classes]`` per-class losses of the batch (0 where not averaged), and
        ``"mean"`` (the loss) and ``"sum"`` run over the averaged classes.
      axis_name: mapped axis of the batch (global mean, sum and, with
        ``per_image=False``, the global sort).

    Returns:
      A float32 scalar, or the values of ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> probs = jnp.array([[[0.8, 0.2], [0.4, 0.6], [0.7, 0.3]]])  # one image, 3 pixels
      >>> labels = jnp.array([[0, 1, 1]])
      >>> # class 0: errors 0.7, 0.4, 0.2 (background, background, foreground), Jaccard
      >>> # losses 1/2, 2/3, 1: 0.7·1/2 + 0.4·1/6 + 0.2·1/3 = 0.4833; class 1: errors 0.7,
      >>> # 0.4 (foreground), 0.2: 0.7·1/2 + 0.4·1/2 = 0.55; the mean is 0.5167
      >>> round(float(jaxloss.lovasz_softmax(probs, labels)), 4)
      0.5167

    References:
      Berman, Rannen Triki and Blaschko, "The Lovász-Softmax loss: A tractable surrogate
      for the optimization of the intersection-over-union measure in neural networks",
      CVPR 2018, https://arxiv.org/abs/1705.08790.
    """
    _checks.choice(classes, CLASS_SETS, "classes")
    if from_logits is not None:
        _checks.choice(from_logits, ("softmax",), "from_logits")
    probs = _checks.float_array(probs, "probs", allow_inf=from_logits is not None)
    if from_logits is None:
        _checked.probabilities(probs, "probs")
    if probs.ndim < 2:
        raise ValueError(
            f"`probs` must be [batch, ..., num_classes] (channel last), got shape {probs.shape}."
        )
    num_classes = probs.shape[-1]
    if from_logits is not None and num_classes < 2:
        raise ValueError(
            f"`from_logits='softmax'` over a single class is 1 everywhere (`probs` "
            f"{probs.shape}); binary logits take `lovasz_hinge`."
        )
    labels, counted = _counted_pixels(labels, probs.shape[:-1], num_classes, ignore_index, where)
    probs = probs.reshape(*counted.shape, num_classes)
    # Zeroed before the softmax, so padding in a pixel left out reaches no value or gradient.
    (probs,) = zero_masked(counted, probs)
    if from_logits is not None:
        probs = _numerics.softmax(probs)
    foreground = jax.nn.one_hot(labels, num_classes, dtype=bool) & counted[..., None]
    errors = jnp.where(counted[..., None], jnp.abs(foreground.astype(probs.dtype) - probs), 0)
    sums = _lovasz_sums(
        errors,
        foreground,
        jnp.broadcast_to(counted[..., None], errors.shape),
        per_image=per_image,
        hinge=False,
        axis_name=axis_name,
    )
    axes = 1 if per_image else (0, 1)
    if classes == "present":
        chosen = jnp.sum(foreground, axis=axes)
    else:
        chosen = jnp.broadcast_to(jnp.sum(counted, axis=axes)[..., None], sums.shape)
    return _reduced(sums, chosen, per_image=per_image, reduction=reduction, axis_name=axis_name)


def lovasz_hinge(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    per_image: bool = True,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Lovász hinge loss: the Lovász extension of the binary Jaccard loss at hinge errors.

    .. math::
      \ell = \sum_{k=1}^{n} \max(0, m_{\pi(k)}) \, \big(\Delta(M_k) - \Delta(M_{k-1})\big),
      \qquad m_i = 1 - z_i s_i, \quad s_i = 2 y_i - 1

    over the pixels ``i`` of an image (or of the batch), where ``π`` sorts the hinge errors
    ``m`` in decreasing order, ``M_k`` holds its first k pixels and
    ``Δ(M) = 1 − |F \ M| / |F ∪ M|`` is the Jaccard loss of the foreground ``F``
    (``y = 1``) with mistakes ``M``, as in ``lovasz_softmax``. The ``relu`` is applied after
    the sort, as Berman et al. Correct logits of magnitude at least 1 cost 0; logits of
    ±1 that predict a foreground cost ``2 (1 − IoU)`` of that prediction.

    ``per_image=True`` (the default, as Berman et al. and kornia) scores each image on its
    own; ``per_image=False`` scores the whole batch as one set of pixels (with
    ``axis_name``, the batch of every device, sorted as one; see ``lovasz_softmax``).

    Args:
      logits: ``[batch, ...]`` real-valued scores of the foreground (no class axis).
      labels: integer labels of the same shape, 1 for the foreground and 0 for the
        background (or a boolean mask); any other value (or ``ignore_index``) leaves the
        pixel out.
      per_image: one loss per image, or one over the whole batch.
      ignore_index: a label value to leave out, or None.
      where: optional boolean mask ``[batch]`` of the images that count.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``: ``[batch]`` with ``per_image=True``
        (an image with no counted pixel is left out of the mean); a scalar otherwise.
      axis_name: mapped axis of the batch (global mean, sum and, with
        ``per_image=False``, the global sort).

    Returns:
      A float32 scalar, or the per-image losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.array([[2.0, -0.5, 0.5]])
      >>> labels = jnp.array([[1, 1, 0]])
      >>> # errors −1, 1.5, 1.5: sorted 1.5 (fg), 1.5 (bg), −1 (fg), Jaccard losses
      >>> # 1/2, 2/3, 1: 1.5·1/2 + 1.5·1/6 + 0·1/3 = 1
      >>> round(float(jaxloss.lovasz_hinge(logits, labels)), 4)
      1.0

    References:
      Berman, Rannen Triki and Blaschko, "The Lovász-Softmax loss: A tractable surrogate
      for the optimization of the intersection-over-union measure in neural networks",
      CVPR 2018, https://arxiv.org/abs/1705.08790. Yu and Blaschko, "Learning Submodular
      Losses with the Lovász Hinge", ICML 2015.
    """
    logits = _checks.float_array(logits, "logits")
    if logits.ndim < 1:
        raise ValueError(f"`logits` must be [batch, ...], got shape {logits.shape}.")
    labels = _labels.as_array(labels)
    if labels.dtype == jnp.bool_:  # a binary mask, as the BCE pair and the Dice take
        labels = labels.astype(jnp.int32)
    labels, counted = _counted_pixels(labels, logits.shape, 2, ignore_index, where)
    (logits,) = zero_masked(counted, logits.reshape(counted.shape))
    foreground = (labels == 1) & counted
    signs = 2 * foreground.astype(logits.dtype) - 1
    errors = jnp.where(counted, 1 - logits * signs, 0)
    sums = _lovasz_sums(
        errors[..., None],
        foreground[..., None],
        counted[..., None],
        per_image=per_image,
        hinge=True,
        axis_name=axis_name,
    )
    chosen = jnp.sum(counted[..., None], axis=1 if per_image else (0, 1))
    if not per_image:  # one set of one class: a scalar
        sums, chosen = sums[0], chosen[0]
    return _reduced(sums, chosen, per_image=per_image, reduction=reduction, axis_name=axis_name)
