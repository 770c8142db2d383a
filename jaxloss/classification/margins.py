"""Multi-class and multi-label margin losses, as torch's: ``multi_margin`` (a hinge on every
wrong class), ``multilabel_margin`` (a hinge on every target/non-target pair) and
``multilabel_soft_margin`` (per-class logistic losses, averaged over the classes).

``logits`` have their classes on the last axis; the per-sample loss (``reduction="none"``)
has the logits' shape without it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _numerics
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName, vary_like
from jaxloss.classification.binary import _binary_logit_loss, _weighted
from jaxloss.classification.softmax import (
    _class_weights,
    _classes_last,
    _integer_targets,
)


def multi_margin(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    p: int = 1,
    margin: ArrayLike = 1.0,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Multi-class hinge loss, as ``torch.nn.functional.multi_margin_loss``.

    With :math:`C` classes, label :math:`y` and class weights :math:`w` (1 if not given):

    .. math::
      \ell = \frac{w_y}{C} \sum_{i \ne y} \max(0,\ \text{margin} - x_y + x_i)^p

    every wrong class scored within ``margin`` of the label's is penalized (Weston and
    Watkins' multi-class SVM loss, divided by :math:`C` as torch does). The mean is a plain
    mean over the samples that count: unlike :func:`cross_entropy`, torch does not divide
    by the sum of the class weights here, and neither do we.

    Labels outside ``[0, num_classes)`` (torch raises for them) and ``ignore_index`` are
    excluded: loss 0, not counted, zero gradient.

    Numerics: exact for every finite logit (a sum of clipped differences); a logit of −inf
    removes its class, and a label's logit of −inf gives +inf. The gradient at a hinge's
    kink is 0, as torch's.

    Args:
      logits: scores ``[..., num_classes]``.
      labels: integer class ids of the logits' shape without the class axis.
      p: 1 (hinge) or 2 (squared hinge); static.
      margin: the margin; may be traced.
      class_weights: optional ``[num_classes]`` weights, applied by label.
      ignore_index: labels equal to it are excluded (torch has no such option).
      where: optional boolean mask of the labels' shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the labels' shape).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-sample losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.array([[0.1, 0.2, 0.4, 0.8]])
      >>> round(float(jaxloss.multi_margin(logits, jnp.array([3]))), 4)
      0.325

    References:
      Weston and Watkins, "Support Vector Machines for Multi-Class Pattern Recognition",
      ESANN 1999.
    """
    if p not in (1, 2) or isinstance(p, bool):
        raise ValueError(f"`p` must be 1 or 2 (static), got {p!r}.")
    logits = _classes_last(logits, -1, "logits")
    num_classes = logits.shape[-1]
    weights = _class_weights(class_weights, num_classes)
    safe_labels, mask, logits = _integer_targets(labels, logits, "logits", ignore_index, where)
    margin = jnp.asarray(margin, logits.dtype)
    hinge = jax.nn.relu(margin - _numerics.take_class(logits, safe_labels)[..., None] + logits)
    if p == 2:
        hinge = hinge * hinge
    classes = jax.lax.broadcasted_iota(safe_labels.dtype, logits.shape, logits.ndim - 1)
    wrong_class = classes != safe_labels[..., None]
    loss = jnp.sum(jnp.where(wrong_class, hinge, 0), axis=-1) / num_classes
    if weights is not None:
        loss = weights[safe_labels] * loss
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def multilabel_margin(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Multi-label hinge loss over target/non-target pairs, as
    ``torch.nn.functional.multilabel_margin_loss``.

    Each sample's targets are a list of class ids ended by the first negative entry (torch's
    ``-1`` padding); with :math:`T` that list and :math:`C` classes:

    .. math::
      \ell = \frac{1}{C} \sum_{j \in T} \sum_{i \notin T} \max(0,\ 1 - (x_j - x_i))

    every target class must outscore every other class by 1. As in torch, an id listed twice
    counts twice and a sample with an empty list has loss 0 and counts in the mean.

    Entries after the end of a list are never read (torch requires them to be class ids or
    ``-1``; here anything goes), and listed ids outside ``[0, num_classes)`` (an error in
    torch) are excluded. The work is proportional to the longest list in the batch, not to
    the number of slots: the slots go in blocks of four, in a loop that stops after the last
    list's end, with the gradients computed in the same pass (forward and reverse mode).

    Args:
      logits: scores ``[..., num_classes]``.
      targets: integer class ids ``[..., num_slots]`` (torch: ``num_slots = num_classes``),
        each row a list ended by a negative entry or by the end of the row.
      where: optional boolean mask of the samples, ``logits.shape[:-1]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``logits.shape[:-1]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-sample losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.array([[0.1, 0.2, 0.4, 0.8]])
      >>> targets = jnp.array([[3, 0, -1, 1]])
      >>> round(float(jaxloss.multilabel_margin(logits, targets)), 4)
      0.85
    """
    logits = _classes_last(logits, -1, "logits")
    targets = _checks.integer_array(targets, "targets")
    if targets.ndim == 0 or targets.shape[:-1] != logits.shape[:-1]:
        raise ValueError(
            f"`targets` must be [..., num_slots] with the leading shape {logits.shape[:-1]} of "
            f"`logits`, got {targets.shape}."
        )
    num_classes = logits.shape[-1]
    mask, (logits,) = masked_inputs(where, logits.shape[:-1], logits)
    # A list ends at its first negative entry: nothing from there on is read.
    before_end = jnp.cumsum(targets < 0, axis=-1) == 0
    if mask is not None:
        before_end = before_end & mask[..., None]
    _checked.class_ids(targets, num_classes, "targets", where=before_end)
    listed = before_end & (targets < num_classes)
    safe_targets = jnp.where(listed, targets, 0)
    hinges = _pair_hinges(
        jnp.take_along_axis(logits, safe_targets, axis=-1),
        logits,
        listed,
        ~_listed_classes(safe_targets, listed, num_classes),
        before_end,
    )
    loss = hinges / max(num_classes, 1)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


_SLOTS_PER_STEP = 4  # a list of L ids costs ceil(L / 4) steps of [..., 4, num_classes]


def _listed_classes(ids: jax.Array, listed: jax.Array, num_classes: int) -> jax.Array:
    """Whether each class is on the sample's list, ``[..., num_classes]``: one scatter
    (comparing every slot with every class would cost as much as the loss itself)."""
    leading, slots = ids.shape[:-1], ids.shape[-1]
    rows = math.prod(leading)
    row_ids = jnp.broadcast_to(jnp.arange(rows)[:, None], (rows, slots))
    classes = jnp.zeros((rows, num_classes), bool)
    classes = classes.at[row_ids, ids.reshape(rows, slots)].max(listed.reshape(rows, slots))
    return classes.reshape(*leading, num_classes)


def _hinge_blocks(
    target_logits: jax.Array,
    logits: jax.Array,
    listed: jax.Array,
    others: jax.Array,
    before_end: jax.Array,
    *,
    with_grads: bool,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``Σ_k Σ_i [listed_k, others_i] max(0, 1 − t_k + x_i)`` per sample, and (with
    ``with_grads``) its gradients with respect to ``t`` and ``x``: the slots in blocks, in
    a loop that stops at the first block past every list's end."""
    slots = target_logits.shape[-1]
    step = max(1, min(_SLOTS_PER_STEP, slots))
    padding = [(0, 0)] * (target_logits.ndim - 1) + [(0, -slots % step)]
    target_logits, listed, before_end = (
        jnp.pad(a, padding) for a in (target_logits, listed, before_end)
    )
    padded = target_logits.shape[-1]
    value = jnp.zeros(logits.shape[:-1], logits.dtype)
    shapes = (target_logits.shape, logits.shape) if with_grads else ((), ())
    grads = tuple(jnp.zeros(shape, logits.dtype) for shape in shapes)

    def more(state: tuple) -> jax.Array:
        start = state[0]
        slot = jax.lax.dynamic_index_in_dim(before_end, start, -1, keepdims=False)
        return (start < padded) & jnp.any(slot)

    def block(state: tuple) -> tuple:
        start, value, grad_targets, grad_logits = state
        hinge = 1 - jax.lax.dynamic_slice_in_dim(target_logits, start, step, -1)[..., None]
        hinge = hinge + logits[..., None, :]
        pairs = (
            jax.lax.dynamic_slice_in_dim(listed, start, step, -1)[..., None] & others[..., None, :]
        )
        value = value + jnp.sum(jnp.where(pairs, jax.nn.relu(hinge), 0), axis=(-2, -1))
        if with_grads:
            active = (pairs & (hinge > 0)).astype(logits.dtype)
            grad_targets = jax.lax.dynamic_update_slice_in_dim(
                grad_targets, -jnp.sum(active, axis=-1), start, -1
            )
            grad_logits = grad_logits + jnp.sum(active, axis=-2)
        return start + step, value, grad_targets, grad_logits

    if padded > 0:
        # shard_map: the carry varies over the devices of the batch, as the inputs do.
        carry = vary_like((value, *grads), target_logits, logits, listed, others, before_end)
        _, value, *looped = jax.lax.while_loop(more, block, (jnp.int32(0), *carry))
        grads = tuple(looped)
    grad_targets, grad_logits = grads
    return value, grad_targets[..., :slots] if with_grads else grad_targets, grad_logits


@jax.custom_jvp
def _pair_hinges(
    target_logits: jax.Array,
    logits: jax.Array,
    listed: jax.Array,
    others: jax.Array,
    before_end: jax.Array,
) -> jax.Array:
    return _hinge_blocks(target_logits, logits, listed, others, before_end, with_grads=False)[0]


@_pair_hinges.defjvp
def _pair_hinges_jvp(primals: tuple, tangents: tuple) -> tuple:
    # The loss is piecewise linear: its tangent is the gradient (computed in the forward
    # loop, constant where it exists) times the inputs' tangents, which transposes for
    # reverse mode without differentiating the loop.
    value, grad_targets, grad_logits = _hinge_blocks(*primals, with_grads=True)
    grad_targets, grad_logits = jax.lax.stop_gradient((grad_targets, grad_logits))
    target_tangents, logit_tangents = tangents[:2]
    tangent = jnp.sum(grad_targets * target_tangents, axis=-1) + jnp.sum(
        grad_logits * logit_tangents, axis=-1
    )
    return value, tangent


def multilabel_soft_margin(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    class_weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Multi-label logistic loss averaged over the classes, as
    ``torch.nn.functional.multilabel_soft_margin_loss``.

    .. math::
      \ell = -\frac{1}{C} \sum_{c} w_c \left[t_c \log \sigma(x_c)
             + (1 - t_c) \log \sigma(-x_c)\right]

    :func:`binary_cross_entropy_with_logits` per class, averaged over the :math:`C` classes
    of each sample: one loss per sample, so ``"mean"`` is over samples (equal to the
    elementwise mean, but ``where`` masks samples and ``"none"`` has one value per sample).

    Numerics: ``log_sigmoid``, exact for every finite logit; nothing is clamped. An infinite
    logit gives NaN, as in :func:`binary_cross_entropy_with_logits`; ``where`` masks whole
    samples.

    Args:
      logits: scores ``[..., num_classes]``.
      targets: 0/1 (or soft) targets of the same shape.
      class_weights: optional weights broadcastable to the logits' shape, typically
        ``[num_classes]``; torch's ``weight``.
      where: optional boolean mask of the samples, ``logits.shape[:-1]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``logits.shape[:-1]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-sample losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits, targets = jnp.array([[0.0, 2.0]]), jnp.array([[1.0, 0.0]])
      >>> round(float(jaxloss.multilabel_soft_margin(logits, targets)), 4)
      1.41
    """
    logits = _checks.float_array(logits, "logits")
    targets = _checks.float_array(targets, "targets", allow_int=True)
    _checks.equal_shapes(logits=logits, targets=targets)
    if logits.ndim == 0:
        raise ValueError("`logits` must have a class axis, got a scalar.")
    _checked.probabilities(targets, "targets")
    mask, (logits, targets) = masked_inputs(where, logits.shape[:-1], logits, targets)
    loss = _weighted(_binary_logit_loss(logits, targets, None), class_weights, "class_weights")
    return reduce_loss(jnp.mean(loss, axis=-1), reduction, where=mask, axis_name=axis_name)
