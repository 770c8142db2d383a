"""Softmax classification: cross-entropy (integer or probability targets), NLL, softmax focal.

``logits`` (or ``logprobs``) have the class axis ``axis`` (last by default); integer
``labels`` have their shape without it, which is also the per-example loss shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _labels, _numerics
from jaxloss._deprecation import renamed
from jaxloss._kernels.soft_cross_entropy import soft_cross_entropy
from jaxloss._labels import counted_labels
from jaxloss._reduce import masked_inputs, reduce_loss, zero_masked
from jaxloss._sharding import AxisName
from jaxloss.classification.labels import smooth_labels


def _classes_last(x: ArrayLike, axis: int, name: str) -> jax.Array:
    """``x`` as float with its class ``axis`` moved last."""
    x = _checks.float_array(x, name, allow_inf=True)
    if x.ndim == 0:
        raise ValueError(f"`{name}` must have a class axis, got a scalar.")
    return jnp.moveaxis(x, _checks.class_axis(axis, x.ndim, name), -1)


def _integer_targets(
    labels: ArrayLike,
    scores: jax.Array,
    scores_name: str,
    ignore_index: int | None,
    where: ArrayLike | None,
    *,
    zero_scores: bool = True,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Labels made safe to gather with, the mask of the entries that count, and ``scores``.

    ``scores`` has its class axis last. The mask is False for ignored labels, for labels
    outside ``[0, num_classes)`` and where ``where`` is False; those rows of ``scores`` come
    back zeroed (the masking door), so padding there reaches no value and no gradient.
    ``zero_scores=False`` returns ``scores`` as given, for a caller whose own derivative
    rule masks those rows (:func:`_label_nll`).
    """
    labels = _checks.integer_array(labels, "labels")
    if labels.shape != scores.shape[:-1]:
        one_hot = (
            " (one-hot or probability targets of its shape must be float)"
            if labels.shape == scores.shape
            else ""
        )
        raise ValueError(
            f"`labels` must have the shape of `{scores_name}` without the class axis, "
            f"{scores.shape[:-1]}, got {labels.shape}{one_hot}."
        )
    num_classes = scores.shape[-1]
    where = _checks.mask(where, labels.shape)
    _checked.class_ids(labels, num_classes, ignore_index=ignore_index, where=where)
    counted = counted_labels(labels, num_classes, ignore_index)
    mask, _ = masked_inputs(where, labels.shape, counted=counted)
    if zero_scores:
        (scores,) = zero_masked(mask, scores)
    return jnp.where(mask, labels, 0), mask, scores


@jax.custom_jvp
def _label_nll(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
    """``logsumexp(logits) - logits[label]`` per row, 0 where ``mask`` is False.

    The masking door without a masked copy of the logits: the rows that do not count are
    masked in the ``[...]`` results and in the derivative rule below (the softmax is zeroed
    there before it meets a tangent), so their padding (NaN, ±inf) reaches neither the value
    nor a gradient, and no ``[..., C]`` select is written before the reductions or after the
    gradient (the two passes over the logits that optax does not make).
    """
    return _label_nll_value(logits, labels, mask)[0]


def _label_nll_value(
    logits: jax.Array, labels: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The masked rows' values and the softmax (0 in masked rows)."""
    # One exp per logit, shared by the value's sum and the softmax of the derivative
    # (optax's count; ``_numerics.logsumexp`` and a second exp make two).
    shift = _numerics.exp_shift(jnp.max(logits, axis=-1, keepdims=True))
    exps = jnp.exp(logits - shift)
    total = jnp.sum(exps, axis=-1, keepdims=True)
    # log Σ − (z_y − shift), exact near the maximum (``_numerics.shifted_logsumexp``).
    shifted_label = _numerics.take_class(logits, labels) - shift[..., 0]
    probs = exps / total
    value = jnp.where(mask, jnp.log(total)[..., 0] - shifted_label, 0)
    return value, jnp.where(mask[..., None], probs, 0)


@_label_nll.defjvp
def _label_nll_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    logits, labels, mask = primals
    value, probs = _label_nll_value(logits, labels, mask)
    return value, _label_row_tangent(probs, tangents[0], labels, mask)


def _label_row_tangent(
    weights: jax.Array, d_scores: jax.Array, labels: jax.Array, mask: jax.Array
) -> jax.Array:
    """``Σ_c w_c ds_c − ds_y`` per row, 0 where ``mask`` is False: the tangent of a row loss
    ``f(s) − s_y`` whose ``f`` has derivative ``w`` (the softmax of a log-sum-exp, the tie
    shares of a max), ``w`` already 0 in the rows left out."""
    return jnp.sum(weights * d_scores, axis=-1) - jnp.where(
        mask, _numerics.take_class(d_scores, labels), 0
    )


def _as_class_vector(weights: jax.Array, ndim: int) -> jax.Array:
    """A per-class vector shaped to broadcast against a classes-last array of rank ``ndim``."""
    return weights.reshape((1,) * (ndim - 1) + weights.shape)


def _class_weights(class_weights: ArrayLike | None, num_classes: int) -> jax.Array | None:
    if class_weights is None:
        return None
    return _checks.vector_of_length(class_weights, num_classes, "class_weights", "one per class")


def probability_targets(logits: jax.Array, targets: jax.Array) -> None:
    """Float ``labels`` are probability targets of the logits' shape: a ValueError otherwise,
    saying that class ids must be integers where ``targets`` has the class ids' shape."""
    if targets.shape == logits.shape:
        return
    hint = ""
    if targets.shape == logits.shape[:-1]:
        hint = (
            ": float labels are probability targets; class ids must be an integer array "
            "(`labels.astype(int)`)"
        )
    raise ValueError(
        f"`labels` of dtype {targets.dtype} must have the shape of `logits` {logits.shape}, "
        f"got {targets.shape}{hint}."
    )


def cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: ArrayLike = 0.0,
    axis: int = -1,
    axis_name: AxisName = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Softmax cross-entropy, as ``torch.nn.functional.cross_entropy`` with classes last.

    With integer labels :math:`y_i`, class weights :math:`w` (1 if not given), smoothing
    :math:`\varepsilon` and :math:`C` classes, where :math:`\log p_{i} =` ``log_softmax``:

    .. math::
      \ell_i = (1 - \varepsilon)\, w_{y_i} (-\log p_{i y_i})
               + \frac{\varepsilon}{C} \sum_c w_c (-\log p_{ic}),
      \qquad \text{mean} = \frac{\sum_i \ell_i}{\sum_i w_{y_i}}

    over the entries that count (not ignored, not masked by ``where``). With probability
    targets :math:`t` (float, the logits' shape):
    :math:`\ell_i = -\sum_c w_c\, t'_{ic} \log p_{ic}` with
    :math:`t' = (1 - \varepsilon) t + \varepsilon / C`, and the mean divides by the number
    of entries — torch's rules in both cases. A class left out of the softmax by a logit
    of −inf adds 0 where its target :math:`t'_{ic}` is 0 (:math:`0 \log 0 = 0`, with finite
    gradients, as optax's ``safe_softmax_cross_entropy``; torch gives NaN), and +inf where
    it is above 0.

    The default path never materializes ``log_softmax``: it computes the log-normalizer and
    gathers the label's logit, which XLA fuses with the backward pass.

    Numerics: with integer labels :math:`-\log p_{iy} = \log \sum_c e^{z_c - m} - (z_y -
    m)`, :math:`m = \max_c z_c`, exact near the maximum as torch's ``log_softmax`` (within
    an ulp of 1 of float64). With probability targets the terms are ``logsumexp(z) − z_c``
    (optax's form), whose rounding is an ulp of the largest logit: 1e-4 at logits near 2000.

    Args:
      logits: unnormalized scores, ``[..., num_classes]`` (class axis at ``axis``); any
        float dtype, half precision computed in float32.
      labels: integer class ids of the logits' shape without the class axis; or float class
        probabilities of the logits' shape.
      class_weights: optional ``[num_classes]`` weights; ``"mean"`` becomes torch's weighted
        mean.
      ignore_index: integer labels equal to it are excluded (loss 0, not counted). Labels
        outside ``[0, num_classes)`` are always excluded. Not allowed with probabilities.
      label_smoothing: :math:`\varepsilon \in [0, 1]`; may be traced.
      axis: the class axis of ``logits`` (and of probability ``labels``).
      axis_name: mapped axis over which the batch is split; ``"mean"``/``"sum"`` are then
        global, equal to the single-device value on the whole batch.
      where: optional boolean mask, broadcastable to ``"none"``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the logits' shape without the class
        axis).

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``. A mean over no
      counted entries is 0 (torch gives NaN).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
      >>> round(float(jaxloss.cross_entropy(logits, jnp.array([0, -100]))), 4)
      0.2395

    References:
      Müller, Kornblith and Hinton, "When Does Label Smoothing Help?", 2019.
      https://arxiv.org/abs/1906.02629
    """
    _checks.in_range(label_smoothing, "label_smoothing", low=0, high=1)
    logits = _classes_last(logits, axis, "logits")
    num_classes = logits.shape[-1]
    weights = _class_weights(class_weights, num_classes)
    labels = _labels.as_array(labels)

    if jnp.issubdtype(labels.dtype, jnp.floating):
        if ignore_index is not None:
            raise ValueError(
                "`ignore_index` applies to integer labels only; with probability targets mask "
                "entries with `where` (torch raises for it too)."
            )
        targets = _classes_last(labels, axis, "labels")
        probability_targets(logits, targets)
        _checked.probabilities(targets, "labels")
        mask, (logits, targets) = masked_inputs(where, logits.shape[:-1], logits, targets)
        if not _checks.is_static_zero(label_smoothing):
            targets = smooth_labels(targets, label_smoothing)
        if weights is not None:
            targets = targets * _as_class_vector(weights, targets.ndim)
        loss = soft_cross_entropy(logits, targets)
        return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)

    smoothed = not _checks.is_static_zero(label_smoothing)
    # A short class axis (a segmentation map's few classes) goes class by class with
    # zeroed rows: twice as fast there as ``_label_nll``'s reductions, which win past it.
    short = _numerics.UNROLLED_CLASSES >= num_classes
    safe_labels, mask, logits = _integer_targets(
        labels, logits, "logits", ignore_index, where, zero_scores=smoothed or short
    )
    if smoothed or short:
        shift, log_total = _numerics.shifted_logsumexp(logits)
        loss = log_total - (_numerics.take_class(logits, safe_labels) - shift)
    else:
        loss = _label_nll(logits, safe_labels, mask)
    label_weights = None if weights is None else weights[safe_labels]
    if label_weights is not None:
        loss = label_weights * loss
    if smoothed:
        eps = jnp.asarray(label_smoothing, loss.dtype)
        neg_log_probs = log_total[..., None] - (logits - shift[..., None])
        if weights is not None:
            neg_log_probs = neg_log_probs * _as_class_vector(weights, logits.ndim)
        # A traced ε of 0 adds nothing, also where a class is left out (−inf: 0 · inf).
        uniform = jnp.where(eps == 0, 0, eps / num_classes * jnp.sum(neg_log_probs, axis=-1))
        loss = (1 - eps) * loss + uniform
    return reduce_loss(loss, reduction, where=mask, mean_weights=label_weights, axis_name=axis_name)


@renamed(log_probs="logprobs")
def nll(
    logprobs: ArrayLike,
    labels: ArrayLike,
    *,
    class_weights: ArrayLike | None = None,
    ignore_index: int | None = None,
    axis: int = -1,
    axis_name: AxisName = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Negative log-likelihood, as ``torch.nn.functional.nll_loss`` with classes last.

    .. math::
      \ell_i = -w_{y_i} \log p_{i y_i}, \qquad
      \text{mean} = \frac{\sum_i \ell_i}{\sum_i w_{y_i}}

    over the entries that count. Use it on log-probabilities you already have (a
    ``log_softmax`` output, a mixture's log-density); on logits use :func:`cross_entropy`.

    Numerics: nothing is clamped (unlike :func:`binary_cross_entropy`): finite inputs give
    finite values, and a log-probability of −inf at the label gives +inf (NaN with a class
    weight of 0, as in torch). Entries that do not count (ignored, out of range, masked) never
    reach the value or the gradient, and a mean with nothing counted (or a total weight of 0)
    is 0.

    Args:
      logprobs: log-probabilities ``[..., num_classes]`` (class axis at ``axis``).
      labels: integer class ids of the shape of ``logprobs`` without the class axis.
      class_weights: optional ``[num_classes]`` weights (torch's weighted mean).
      ignore_index: labels equal to it are excluded; labels outside
        ``[0, num_classes)`` are always excluded.
      axis: the class axis of ``logprobs``.
      axis_name: mapped axis over which the batch is split (global mean and sum).
      where: optional boolean mask, broadcastable to ``"none"``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logprobs = jnp.log(jnp.array([[0.5, 0.5], [0.25, 0.75]]))
      >>> round(float(jaxloss.nll(logprobs, jnp.array([0, 1]))), 4)
      0.4904
    """
    logprobs = _classes_last(logprobs, axis, "logprobs")
    weights = _class_weights(class_weights, logprobs.shape[-1])
    # No masked copy of the log-probabilities: a row's one gathered entry is masked in the
    # ``[...]`` loss below, so padding elsewhere in the row is never read, and the gradient
    # is one scatter into zeros, or a select per class up to ``UNROLLED_CLASSES`` (a masked
    # copy costs another pass over ``[..., C]``).
    safe_labels, mask, logprobs = _integer_targets(
        labels, logprobs, "logprobs", ignore_index, where, zero_scores=False
    )
    loss = jnp.where(mask, -_numerics.take_class(logprobs, safe_labels), 0)
    label_weights = None if weights is None else weights[safe_labels]
    if label_weights is not None:
        loss = label_weights * loss
    return reduce_loss(loss, reduction, where=mask, mean_weights=label_weights, axis_name=axis_name)


def softmax_focal(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    axis: int = -1,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Multi-class (softmax) focal loss.

    .. math::
      \ell_i = -\alpha_{y_i} (1 - p_{i y_i})^\gamma \log p_{i y_i}

    ``gamma = 0`` and no ``alpha`` is :func:`cross_entropy`. The mean divides by the number
    of counted entries (α is a weighting, not a weighted mean). Labels outside
    ``[0, num_classes)`` are excluded, as in :func:`cross_entropy`.

    Numerics: finite for all finite logits: ``log p`` is the label's shifted logit minus the
    log of the shifted exponentials' sum (exact near the maximum, as torch's
    ``log_softmax``), ``1 − p = −expm1(log p)`` keeps its precision as ``p → 1``, and the
    power has a finite gradient at ``1 − p = 0`` even for ``γ < 1``. A logit of −inf at the
    label gives +inf, as in :func:`cross_entropy`.

    Args:
      logits: unnormalized scores ``[..., num_classes]`` (class axis at ``axis``).
      labels: integer class ids of the logits' shape without the class axis.
      gamma: focusing parameter ``>= 0``; may be traced.
      alpha: optional ``[num_classes]`` per-class weights; may be traced.
      axis: the class axis of ``logits``.
      where: optional boolean mask, broadcastable to ``"none"``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.log(jnp.array([[0.5, 0.5]]))
      >>> round(float(jaxloss.softmax_focal(logits, jnp.array([0]), gamma=2.0)), 4)
      0.1733

    References:
      Lin, Goyal, Girshick, He and Dollár, "Focal Loss for Dense Object Detection", 2017.
      https://arxiv.org/abs/1708.02002
    """
    _checks.in_range(gamma, "gamma", low=0)
    logits = _classes_last(logits, axis, "logits")
    safe_labels, mask, logits = _integer_targets(labels, logits, "logits", None, where)
    log_p = _numerics.log_softmax_at(logits, safe_labels)
    # 1 - p = -expm1(log p) keeps its precision when p is close to 1.
    loss = -_numerics.safe_pow(-jnp.expm1(log_p), gamma) * log_p
    if alpha is not None:
        alpha = _checks.vector_of_length(alpha, logits.shape[-1], "alpha", "one per class")
        loss = alpha[safe_labels] * loss
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)
