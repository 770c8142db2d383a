"""Binary (per-element) classification: binary cross-entropy on probabilities or logits,
sigmoid focal loss, and the ±1-target losses (soft margin, hinge embedding).

``targets`` has the shape of ``probs``/``logits``; the per-element loss too.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _numerics
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName


def _elementwise_targets(
    scores: ArrayLike,
    targets: ArrayLike,
    scores_name: str,
    where: ArrayLike | None,
    *,
    probability_targets: bool = True,
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Float ``scores`` and ``targets`` of one shape (as torch requires), through the
    masking door, and the mask. Checked mode checks probability targets (not ±1 signs)."""
    scores = _checks.float_array(scores, scores_name)
    targets = _checks.float_array(targets, "targets", allow_int=True)
    _checks.equal_shapes(**{scores_name: scores, "targets": targets})
    if probability_targets:
        _checked.probabilities(targets, "targets")
    if scores_name == "probs":
        _checked.probabilities(scores, "probs")
    mask, (scores, targets) = masked_inputs(where, scores.shape, scores, targets)
    return scores, targets, mask


def _weighted(loss: jax.Array, weights: ArrayLike | None, name: str = "weights") -> jax.Array:
    if weights is None:
        return loss
    weights = _checks.float_array(weights, name, allow_int=True)
    return loss * _checks.broadcast_to(weights, loss.shape, name, "the per-element loss")


def binary_cross_entropy(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Binary cross-entropy on probabilities, as ``torch.nn.functional.binary_cross_entropy``.

    .. math::
      \ell_i = -w_i \left[t_i \log p_i + (1 - t_i) \log(1 - p_i)\right]

    with both logarithms clamped at -100 as torch does, so ``p = 0`` or ``1`` gives a large
    finite loss and finite gradients. The gradient is that clamped loss's own derivative: 0
    in a term whose log is held at the floor (a wrong prediction at exactly 0 or 1), where
    torch's backward returns ``(p - t) / max(p (1 - p), 1e-12)``, ±1e12 (through a
    saturated sigmoid both are 0). Prefer :func:`binary_cross_entropy_with_logits` when
    you have logits: it is exact where a saturated sigmoid is not.

    Args:
      probs: probabilities in ``[0, 1]``, any shape.
      targets: targets in ``[0, 1]`` of the same shape.
      weights: optional rescaling broadcastable to that shape (not a weighted mean: the
        mean still divides by the number of elements, as torch).
      where: optional boolean mask broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> round(float(jaxloss.binary_cross_entropy(jnp.array([0.9]), jnp.array([1.0]))), 4)
      0.1054
    """
    probs, targets, mask = _elementwise_targets(probs, targets, "probs", where)
    loss = _probability_cross_entropy(probs, targets)
    return reduce_loss(_weighted(loss, weights), reduction, where=mask, axis_name=axis_name)


# e^-100 (torch's floor of the logs) times 2^64, a normal float32.
_FLOOR_PROBABILITY_2_64 = math.exp(-100.0) * 2.0**64


def _probability_cross_entropy_partials(
    probs: jax.Array, targets: jax.Array
) -> tuple[jax.Array, jax.Array]:
    # Each clamped log's slope, 1/p and -1/(1 - p), is 0 where the floor holds it (or p is at
    # 0 or 1). log p < -100 is p < e^-100, a subnormal: compared scaled by 2^64, where it is
    # normal and exact, so flushing subnormals to 0 changes nothing. log(1 - p) < -100 holds
    # in float32 only at p = 1. No log for the slope, and no literal constant the value uses
    # (XLA would write one shared with the value's sum out as an array).
    low, high = probs * 2.0**64 < _FLOOR_PROBABILITY_2_64, probs >= 1
    slope_p = jnp.where(low, 0, 1 / jnp.where(low, 1, probs))
    slope_1m = jnp.where(high, 0, 1 / (1 - jnp.where(high, 0, probs)))
    by_probs = slope_1m - targets * (slope_p + slope_1m)
    log_p = jnp.log(jnp.where(probs <= 0, 1, probs))
    log_1m = jnp.log1p(-jnp.where(high, 0, probs))
    by_targets = jnp.where(low, 100, -log_p) - jnp.minimum(-log_1m, 100)
    return by_probs, by_targets


@_numerics.elementwise(_probability_cross_entropy_partials)
def _probability_cross_entropy(probs: jax.Array, targets: jax.Array) -> jax.Array:
    """``-(t·log p + (1 - t)·log(1 - p))``, both logs floored at -100 as torch does, written
    without a select (``max`` with the floor; a NaN probability stays NaN) and without the
    constant 1, which the gradient's code uses: ``-(b + t (a - b))``."""
    log_p = jnp.maximum(jnp.log(probs), -100)
    log_1m = jnp.maximum(jnp.log1p(-probs), -100)
    return -(log_1m + targets * (log_p - log_1m))


# σ(x) - t for the logit (XLA's logistic), -x for the target: autodiff of max and |x| would
# split their ties at x = 0.
@_numerics.elementwise(lambda logits, targets: (jax.nn.sigmoid(logits) - targets, -logits))
def _logit_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """``-[t · log σ(x) + (1 - t) · log σ(-x)] = max(x, 0) - t·x + log1p(e^{-|x|})``.

    One exp and one log per element (two ``log_sigmoid`` cost two of each), and exact for
    any logit: with a hard target the first two terms cancel exactly, so a confidently
    right logit keeps its tiny loss ``log1p(e^{-|x|})``.
    """
    return jnp.maximum(logits, 0) - targets * logits + _numerics.softplus_tail(logits)


def _binary_logit_loss(
    logits: jax.Array, targets: jax.Array, pos_weight: ArrayLike | None
) -> jax.Array:
    """``-[pos_weight · t · log σ(x) + (1 - t) · log σ(-x)]``, stable for any logit."""
    if pos_weight is None:
        return _logit_cross_entropy(logits, targets)
    pos_weight = _checks.float_array(pos_weight, "pos_weight", allow_int=True)
    _checks.broadcast_to(pos_weight, logits.shape, "pos_weight", "the per-element loss")
    # Passed at its own size (a class vector, its rank padded with 1s): broadcast before the
    # barrier of the partials, XLA would write it out at the logits' size.
    pos_weight = pos_weight.reshape((1,) * (logits.ndim - pos_weight.ndim) + pos_weight.shape)
    return _weighted_logit_cross_entropy(logits, targets, pos_weight)


def _weighted_logit_cross_entropy_partials(
    logits: jax.Array, targets: jax.Array, pos_weight: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    # -ρ t σ(-x) + (1 - t) σ(x) for the logit; the softplus terms for t and ρ. max(x, 0) as
    # (x + |x|) / 2 (exact): a literal constant shared with the value's sum would be
    # written out by XLA as an array.
    tail = _numerics.softplus_tail(logits)
    relu = (logits + jnp.abs(logits)) * 0.5
    negative_softplus, softplus = (relu - logits) + tail, relu + tail
    by_logits = (1 - targets) * jax.nn.sigmoid(logits) - pos_weight * targets * jax.nn.sigmoid(
        -logits
    )
    return by_logits, pos_weight * negative_softplus - softplus, targets * negative_softplus


@_numerics.elementwise(_weighted_logit_cross_entropy_partials)
def _weighted_logit_cross_entropy(
    logits: jax.Array, targets: jax.Array, pos_weight: jax.Array
) -> jax.Array:
    """``ρ t softplus(-x) + (1 - t) softplus(x)`` (``-log σ(±x) = softplus(∓x)``), written
    without a select and without the constant 1 (``(1 - t) s`` as ``s - t s``, exact for hard
    targets), which the partials use; the partials in the logit, the target and ρ written
    out."""
    tail = _numerics.softplus_tail(logits)
    negative = jnp.maximum(logits, 0) + tail
    positive = pos_weight * targets * (jnp.maximum(-logits, 0) + tail)
    return positive + (negative - targets * negative)


def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Binary cross-entropy on logits, as ``torch.nn.functional.binary_cross_entropy_with_logits``.

    .. math::
      \ell_i = -w_i \left[\rho_i\, t_i \log \sigma(x_i) + (1 - t_i) \log \sigma(-x_i)\right]

    computed with ``log_sigmoid``, exact for any logit. ``pos_weight`` :math:`\rho` trades
    recall for precision per class in multi-label problems (a spam filter that must not miss
    spam: ``pos_weight > 1``).

    Numerics: finite for all finite logits with nothing clamped (unlike
    :func:`binary_cross_entropy`): ``log_sigmoid`` never overflows, and a term grows linearly,
    about ``|x|`` times its weights for a confidently wrong logit. An infinite logit gives
    NaN (``max(x, 0) - t x`` holds ``0 · inf`` or ``inf - inf``), except ``-inf`` under a
    target above 0, which gives inf (torch: NaN, except +inf under a target below 1, which
    gives inf), also where the limit is 0 (a class switched off by
    ``-inf`` under a target of 0): leave such entries out with ``where``, which never reads
    them. Computing those limits in the formula measured 1.1-1.6x slower in value and
    gradient on CPU (XLA:CPU's fused sum takes no select), so it does not.

    Args:
      logits: floating array, any shape (multi-label: ``[..., num_classes]``).
      targets: targets in ``[0, 1]`` of the same shape.
      weights: optional rescaling broadcastable to that shape (mean still divides by the
        number of elements).
      pos_weight: optional weight of the positive term, broadcastable to that shape
        (typically ``[num_classes]``); may be traced.
      where: optional boolean mask broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> loss = jaxloss.binary_cross_entropy_with_logits(jnp.array([0.0]), jnp.array([1.0]))
      >>> round(float(loss), 4)
      0.6931
    """
    logits, targets, mask = _elementwise_targets(logits, targets, "logits", where)
    loss = _binary_logit_loss(logits, targets, pos_weight)
    return reduce_loss(_weighted(loss, weights), reduction, where=mask, axis_name=axis_name)


def sigmoid_focal(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike | None = 0.25,
    gamma: ArrayLike = 2.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Sigmoid focal loss, as torchvision's ``sigmoid_focal_loss``; per element.

    .. math::
      \ell_i = \alpha_t (1 - p_t)^\gamma\, \mathrm{BCE}(x_i, t_i),\quad
      p_t = p t + (1 - p)(1 - t),\quad \alpha_t = \alpha t + (1 - \alpha)(1 - t)

    The modulating factor :math:`(1 - p_t)^\gamma` silences the many easy examples (the
    background of a dense detector, the healthy pixels around a 0.1% tumor) so the rare hard
    ones drive the gradient. ``alpha < 0`` (torchvision) or ``None`` turns the α-weighting off.

    Numerics: finite for all finite logits: the cross-entropy factor uses ``log_sigmoid``, and
    ``(1 − p_t)^γ`` a power whose gradient is finite at ``1 − p_t = 0`` even for ``γ < 1``.
    ``1 − p`` is ``σ(−x)`` (not ``1 − σ(x)``, torchvision's form, which rounds to 0 in
    float32 for a target of 1 and ``x`` above about 17, so that its loss is exactly 0 there
    for ``γ > 0``): here the loss keeps its value, 1.8e-23 at ``x = 17`` with the defaults.
    An infinite logit gives NaN, as in :func:`binary_cross_entropy_with_logits`: leave it out with
    ``where``.

    Speed: a ``gamma`` given as a Python number that is whole up to 8 (the default 2) is
    repeated multiplication, a half one up to 8.5 (YOLOv5's 1.5) that times a square root;
    any other, or a traced one, takes XLA's ``pow`` once for value and gradient (on CPU
    about 2 ns an element).

    Args:
      logits: floating array, any shape.
      targets: binary targets (or soft targets in ``[0, 1]``) of the same shape.
      alpha: weight of the positive class in ``[0, 1]``, or negative (torchvision) or None
        (as :func:`softmax_focal`) for none; may be traced.
      gamma: focusing parameter ``>= 0``; may be traced.
      where: optional boolean mask broadcastable to that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> float(jaxloss.sigmoid_focal(jnp.array([0.0]), jnp.array([1.0]), gamma=0.0, alpha=-1.0))
      0.6931471824645996

    References:
      Lin, Goyal, Girshick, He and Dollár, "Focal Loss for Dense Object Detection", 2017.
      https://arxiv.org/abs/1708.02002
    """
    if alpha is None:
        alpha = -1.0
    _checks.in_range(alpha, "alpha", high=1)
    _checks.in_range(gamma, "gamma", low=0)
    logits, targets, mask = _elementwise_targets(logits, targets, "logits", where)
    alpha = jnp.asarray(alpha, logits.dtype)
    # alpha_t = alpha t + (1 - alpha)(1 - t) = a + b t; a = 1, b = 0 for alpha < 0.
    weighted = alpha >= 0
    offset, slope = jnp.where(weighted, 1 - alpha, 1), jnp.where(weighted, 2 * alpha - 1, 0)
    loss = _focal(logits, targets, offset, slope, gamma)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def _focal(
    logits: jax.Array, targets: jax.Array, offset: jax.Array, slope: jax.Array, gamma: ArrayLike
) -> jax.Array:
    """``(a + b t) (1 - p_t)^γ BCE(x, t)`` per element, its partials in ``x``, ``t``, ``a``,
    ``b`` and ``γ`` written out (``_numerics.elementwise``). A Python ``gamma`` stays a
    Python number, so ``safe_pow`` multiplies for a whole one."""
    static = isinstance(gamma, (int, float))
    whole = _numerics.multiplies(gamma)  # any other γ is a square root or XLA's pow

    def exponent(gamma_array: jax.Array) -> ArrayLike:
        return gamma if static else gamma_array

    def modulating_base(probs: jax.Array, complement: jax.Array, targets: jax.Array) -> jax.Array:
        # 1 - p_t = p (1 - t) + (1 - p) t, with 1 - p = σ(-x) and p (1 - t) = p - p t: exact
        # for hard targets, with no literal constant.
        return (probs - probs * targets) + complement * targets

    def partials(*args: jax.Array) -> tuple[jax.Array | None, ...]:
        logits, targets, offset, slope, gamma_array = args
        # The gradient's code shares no literal constant with the value's: XLA would write
        # one out as an array for both (hence max(x, 0) as (x + |x|) / 2, exact, and the
        # sign test x >= -x). σ(x), σ(-x) and the cross-entropy from one e = exp(-|x|).
        power = exponent(gamma_array)
        e = jnp.exp(-jnp.abs(logits))
        inverse = 1 / (1 + e)
        positive = logits >= -logits
        probs = jnp.where(positive, inverse, e * inverse)
        complement = jnp.where(positive, e * inverse, inverse)
        base = modulating_base(probs, complement, targets)
        cross_entropy = (
            (logits + jnp.abs(logits)) * 0.5 - targets * logits + _numerics.log1p_unit(e)
        )
        # d(1 - p_t)^γ / d(1 - p_t): 0 where 1 - p_t = 0, as safe_pow's own derivative.
        below = _numerics.safe_pow(base, power - 1)
        factor_slope = power * below
        if whole:
            factor = _numerics.safe_pow(base, power)
        else:
            # One power for both, where XLA:CPU's pow costs ~2 ns an element; 0^γ from a
            # scalar. With the written value: γ = 1.3 or traced, value and gradient 1.22-1.26x
            # faster at 2^20 logits, 4 MiB of temp memory instead of 12.
            zero_power = _numerics.safe_pow(jnp.zeros((), base.dtype), power)
            factor = jnp.where(base > 0, below * base, zero_power)
        weight = offset + slope * targets
        unweighted = cross_entropy * factor
        spread = probs * complement  # dσ/dx
        by_logits = weight * (
            (probs - targets) * factor + cross_entropy * factor_slope * spread * (1 - 2 * targets)
        )
        by_targets = slope * unweighted + weight * (
            -logits * factor + cross_entropy * factor_slope * (complement - probs)
        )
        by_gamma = None
        if not static:
            positive = base > 0
            log_base = jnp.where(positive, jnp.log(jnp.where(positive, base, 1)), 0)
            by_gamma = weight * unweighted * log_base
        return by_logits, by_targets, unweighted, targets * unweighted, by_gamma

    # A whole γ's value goes into XLA:CPU's YNNPACK sum; any other's (a square root, a
    # power, selects) XLA would split into several loops writing arrays for the sum (three
    # at γ = 1.5): written out by one loop instead (one array).
    @_numerics.elementwise(partials, written=not whole)
    def focal(*args: jax.Array) -> jax.Array:
        logits, targets, offset, slope, gamma_array = args
        # σ(x) and σ(-x) from the cross-entropy's own softplus(x) = max(x, 0) + log1p(e^-|x|):
        # σ(x) = e^{x - softplus(x)}, σ(-x) = e^{-softplus(x)}, both to a few ulp. XLA's
        # logistic would bring its constant 1 into the sum (see the partials).
        # (max(x, 0) - t x) first: exact for a hard target, so no cancellation against x.
        relu, tail = jnp.maximum(logits, 0), _numerics.softplus_tail(logits)
        softplus, cross_entropy = relu + tail, (relu - targets * logits) + tail
        probs, complement = jnp.exp(logits - softplus), jnp.exp(-softplus)
        base = modulating_base(probs, complement, targets)
        weight = offset + slope * targets
        return weight * cross_entropy * _numerics.safe_pow(base, exponent(gamma_array))

    return focal(logits, targets, offset, slope, jnp.asarray(gamma, logits.dtype))


def soft_margin(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Soft margin loss, as ``torch.nn.functional.soft_margin_loss``.

    .. math::
      \ell_i = \log\left(1 + e^{-y_i x_i}\right)

    the logistic loss of a score :math:`x` against a ±1 target :math:`y`: binary
    cross-entropy on logits with targets ``(y + 1) / 2``, in the sign convention of SVMs.

    Numerics: computed as ``softplus(−y·x)``, finite for every finite product (about
    ``|x|`` for a confidently wrong score); nothing is clamped, and NaN propagates.

    Args:
      logits: scores of any shape.
      targets: 1 or −1 (any real value is accepted, as torch) of the same shape.
      where: optional boolean mask of that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> round(float(jaxloss.soft_margin(jnp.array([0.0, 2.0]), jnp.array([1, -1]))), 4)
      1.41
    """
    logits, targets, mask = _elementwise_targets(
        logits, targets, "logits", where, probability_targets=False
    )
    return reduce_loss(
        _numerics.softplus(-targets * logits), reduction, where=mask, axis_name=axis_name
    )


def hinge_embedding(
    inputs: ArrayLike,
    targets: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Hinge embedding loss, as ``torch.nn.functional.hinge_embedding_loss``.

    .. math::
      \ell_i = \begin{cases} x_i & y_i = 1 \\ \max(0,\ \text{margin} - x_i) & y_i = -1
      \end{cases}

    for a distance (or dissimilarity) :math:`x` between two items and a target of 1
    (similar: pull together) or −1 (dissimilar: push past ``margin``). Any other target
    value gets both terms, :math:`x + \max(0, \text{margin} - x)`, as in torch.

    Numerics: exact; NaN propagates. At ``x = margin`` the hinge's gradient is −1, as
    torch's.

    Args:
      inputs: distances of any shape (any real value is accepted).
      targets: 1 or −1 of the same shape.
      margin: the margin of the dissimilar pairs; may be traced.
      where: optional boolean mask of that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> float(jaxloss.hinge_embedding(jnp.array([0.5, 0.25]), jnp.array([1, -1])))
      0.625

    References:
      Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an Invariant
      Mapping", 2006. https://doi.org/10.1109/CVPR.2006.100
    """
    inputs, targets, mask = _elementwise_targets(
        inputs, targets, "inputs", where, probability_targets=False
    )
    hinge = jnp.asarray(margin, inputs.dtype) - inputs
    # torch's clamp_min: the gradient is -1 at the margin itself, and NaN stays NaN.
    hinge = jnp.where(hinge < 0, 0, hinge)
    loss = jnp.where(targets != 1, hinge, 0) + jnp.where(targets != -1, inputs, 0)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)
