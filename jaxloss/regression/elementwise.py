"""Elementwise regression losses: MSE, MAE (L1), Huber, smooth L1, log-cosh.

The per-element loss has the broadcast shape of ``predictions`` and ``targets``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName


def _weighted_pair(
    predictions: ArrayLike,
    targets: ArrayLike,
    weights: ArrayLike | None,
    where: ArrayLike | None,
) -> tuple[jax.Array, jax.Array, jax.Array | None, jax.Array | None]:
    """The predictions and targets in float32 (or wider) at their broadcast shape, through
    the masking door, the per-element ``weights`` broadcast to the loss's shape, and the mask.

    The weights pass through the masking door with the inputs: a NaN weight in a masked
    entry reaches neither the weighted sum nor the sum of weights of torch's mean.
    """
    shape = _checks.broadcast_shapes_as_torch(predictions=predictions, targets=targets)
    predictions = _checks.float_array(predictions, "predictions")
    targets = _checks.float_array(targets, "targets", allow_int=True)
    arrays = [jnp.broadcast_to(predictions, shape), jnp.broadcast_to(targets, shape)]
    if weights is not None:
        weights = _checks.float_array(weights, "weights", allow_int=True)
        arrays.append(_checks.broadcast_to(weights, shape, "weights", "the per-element loss"))
    mask, (predictions, targets, *weights_or_none) = masked_inputs(where, shape, *arrays)
    return predictions, targets, weights_or_none[0] if weights_or_none else None, mask


def _squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """``(p - t)²``, differentiated by autodiff: XLA writes ``p - t`` out once, then sums its
    square and scales it for the gradient, each from one array (optax's compiled program,
    fusion for fusion). Written-out partials (``_numerics.elementwise``) read both inputs in
    the sum and again in the gradient; measured on a 2-core AVX-512 CPU, value and gradient
    at 2^20 and 2^22 elements took 1.15-1.3x as long that way."""
    return jnp.square(predictions - targets)


# The elementwise terms of a prediction and a target, with their derivatives written out
# (``_numerics.elementwise``: value and gradient each read the two inputs once).
# sign(0) = 0: torch's subgradient at an exact match.
@_numerics.elementwise(lambda p, t: (jnp.sign(p - t), jnp.sign(t - p)))
def _absolute_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    return jnp.abs(predictions - targets)


def _weighted_mean_of(
    loss: jax.Array,
    weights: jax.Array | None,
    reduction: str,
    mask: jax.Array | None,
    axis_name: AxisName,
) -> jax.Array:
    """torch 2.13's weighted ``mse_loss``/``l1_loss``: ``w·ℓ``, summed, or ``Σ w·ℓ / Σ w``.

    The sums run over the counted entries (on every device of ``axis_name``); a total weight
    of 0 gives 0, not NaN.
    """
    if weights is not None:
        loss = weights * loss
    return reduce_loss(loss, reduction, where=mask, mean_weights=weights, axis_name=axis_name)


def mse(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Mean squared error, as ``torch.nn.functional.mse_loss``.

    .. math::
      \ell_i = (\text{predictions}_i - \text{targets}_i)^2

    The loss of regression and of denoising: its minimizer is the conditional mean, and it
    punishes large errors quadratically, so outliers dominate it (see :func:`huber`).

    With ``weights`` (torch 2.13's ``weight=``) each term is :math:`w_i \ell_i` and
    ``"mean"`` is the weighted mean :math:`\sum_i w_i \ell_i / \sum_i w_i` over the counted
    entries (``where``), as torch's; a total weight of 0 gives 0, not NaN. torch requires
    ``weight`` of the predictions' shape; jaxloss takes any shape that broadcasts to the
    loss's, and its sum of weights runs over the loss's elements (the same number as
    torch's whenever the predictions have the loss's shape, the only case torch does not
    warn about).

    Numerics: nothing is clamped; with ``d = predictions - targets``, a term is finite unless
    ``d²`` overflows float32, which it does past ``|d| ≈ 1.8e19`` (+inf there). Half-precision
    inputs are computed in float32.

    Args:
      predictions: floating array of any shape.
      targets: array broadcastable with ``predictions``.
      weights: optional per-element weights broadcastable to the broadcast shape;
        ``"mean"`` then divides by their sum.
      where: optional boolean mask broadcastable to the broadcast shape; masked elements
        add 0 and do not count in the mean.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element (weighted) losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> float(jaxloss.mse(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0])))
      2.5
      >>> float(jaxloss.mse(jnp.array([1.0, 2.0]), jnp.zeros(2), weights=jnp.array([3.0, 1.0])))
      1.75
    """
    predictions, targets, weights, mask = _weighted_pair(predictions, targets, weights, where)
    return _weighted_mean_of(
        _squared_error(predictions, targets), weights, reduction, mask, axis_name
    )


def mae(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Mean absolute error (L1), as ``torch.nn.functional.l1_loss``; alias :func:`l1`.

    .. math::
      \ell_i = |\text{predictions}_i - \text{targets}_i|

    Its minimizer is the conditional median, so it is robust to outliers; the gradient has
    constant magnitude (and is 0 at an exact match, as in torch).

    ``weights`` (torch 2.13's ``weight=``) make ``"mean"`` the weighted mean
    :math:`\sum_i w_i \ell_i / \sum_i w_i` over the counted entries, as in :func:`mse`
    (0 for a total weight of 0).

    Numerics: finite for all finite inputs (nothing is squared or clamped), as long as
    ``predictions - targets`` itself does not overflow float32.

    Args:
      predictions: floating array of any shape.
      targets: array broadcastable with ``predictions``.
      weights: optional weights of the elements (broadcastable to the broadcast shape),
        for torch's weighted mean.
      where: optional boolean mask broadcastable to the broadcast shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> float(jaxloss.mae(jnp.array([1.0, -3.0]), jnp.array([0.0, 0.0])))
      2.0
    """
    predictions, targets, weights, mask = _weighted_pair(predictions, targets, weights, where)
    return _weighted_mean_of(
        _absolute_error(predictions, targets), weights, reduction, mask, axis_name
    )


l1 = mae
"""Alias of :func:`mae`."""


def _quadratic_then_linear(size: jax.Array, width: jax.Array) -> jax.Array:
    """The Huber function of ``size = |d|``: ``d²/2`` below ``width`` and ``width (|d| -
    width/2)`` beyond, as ``c (|d| - c/2)`` with ``c = min(|d|, width)`` (no select, so
    XLA:CPU sums it in one YNNPACK kernel)."""
    clipped = jnp.minimum(size, width)
    return clipped * (size - 0.5 * clipped)


def _huber_partials(
    predictions: jax.Array, targets: jax.Array, width: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    diff = predictions - targets
    slope = jnp.clip(diff, -width, width)
    size = jnp.abs(diff)
    return slope, -slope, jnp.where(size < width, 0, size - width)


@_numerics.elementwise(_huber_partials, written=True)
def _huber(predictions: jax.Array, targets: jax.Array, width: jax.Array) -> jax.Array:
    """The Huber function of ``d = predictions - targets``: ``d²/2`` for ``|d| < width`` and
    ``width (|d| - width/2)`` beyond (:func:`_quadratic_then_linear`); its slope
    ``clip(d, ±width)`` and its partial in ``width`` written out."""
    return _quadratic_then_linear(jnp.abs(predictions - targets), width)


def _smooth_l1_partials(
    predictions: jax.Array, targets: jax.Array, beta: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    diff = predictions - targets
    positive = beta > 0
    safe_beta = jnp.where(positive, beta, 1)
    # β = 0 is L1, whose slope at an exact match is 0 (sign).
    slope = jnp.where(positive, jnp.clip(diff, -beta, beta) / safe_beta, jnp.sign(diff))
    size = jnp.abs(diff)
    by_beta = jnp.where(size < beta, -jnp.square(size / safe_beta) / 2, -0.5)
    return slope, -slope, jnp.where(positive, by_beta, 0)


@_numerics.elementwise(_smooth_l1_partials, written=True)
def _smooth_l1(predictions: jax.Array, targets: jax.Array, beta: jax.Array) -> jax.Array:
    """Huber with width ``beta`` divided by ``beta``: ``(|d| - c) + c² / (2 beta)`` with
    ``c = min(|d|, beta)``, which is ``|d|²/(2 beta)`` inside the quadratic zone, ``|d| -
    beta/2`` beyond it, and ``|d|`` itself for ``beta = 0`` (``c = 0``, divided by a safe
    ``beta``). No select and no ``0 · inf``: +inf at an infinite difference for every
    ``beta``, and one loop writes the values that XLA:CPU's YNNPACK kernel sums."""
    size = jnp.abs(predictions - targets)
    clipped = jnp.minimum(size, beta)
    return (size - clipped) + clipped * clipped * 0.5 / jnp.where(beta > 0, beta, 1)


def huber(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    delta: ArrayLike = 1.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Huber loss, as ``torch.nn.functional.huber_loss``.

    .. math::
      \ell_i = \begin{cases} \tfrac12 d_i^2 & |d_i| < \delta \\
               \delta (|d_i| - \tfrac12 \delta) & \text{otherwise} \end{cases},
      \quad d_i = \text{predictions}_i - \text{targets}_i

    Quadratic near the target and linear in the tails: MSE's smooth optimum with MAE's
    robustness to outliers.

    With ``weights`` (torch 2.13's ``weight=``) each term is :math:`w_i \ell_i`, and
    ``"mean"`` is torch's for this loss: the plain mean of the weighted terms (divided by
    the number of counted entries, *not* by the sum of the weights as :func:`mse` and
    :func:`mae` do).

    Numerics: finite for finite inputs, with nothing clamped: a term is +inf only where ``d²``
    (in the quadratic zone, so only for ``delta`` above ~1.8e19) or ``delta·|d|`` (in the linear
    zone) passes the float32 maximum, ~3.4e38.

    Args:
      predictions: floating array of any shape.
      targets: array broadcastable with ``predictions``.
      delta: positive threshold between the quadratic and the linear part; may be traced.
      weights: optional per-element factors broadcastable to the broadcast shape (the mean
        still divides by the count, as torch's weighted Huber).
      where: optional boolean mask broadcastable to the broadcast shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> jaxloss.huber(jnp.array([0.5, 3.0]), jnp.zeros(2), reduction="none").tolist()
      [0.125, 2.5]

    References:
      Huber, "Robust Estimation of a Location Parameter", 1964.
      https://doi.org/10.1214/aoms/1177703732
    """
    _checks.in_range(delta, "delta", low=0, low_open=True)
    predictions, targets, weights, mask = _weighted_pair(predictions, targets, weights, where)
    loss = _huber(predictions, targets, jnp.asarray(delta, predictions.dtype))
    if weights is not None:
        loss = weights * loss
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def smooth_l1(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    beta: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Smooth L1 loss, as ``torch.nn.functional.smooth_l1_loss``.

    .. math::
      \ell_i = \begin{cases} \tfrac12 d_i^2 / \beta & |d_i| < \beta \\
               |d_i| - \tfrac12 \beta & \text{otherwise} \end{cases}

    Huber divided by ``beta``: the linear part has slope 1 whatever ``beta`` is. The box
    regression loss of Fast R-CNN. ``beta = 0`` is exactly the L1 loss.

    Numerics: computed as ``(|d| − c) + c²/(2 beta)`` with ``c = min(|d|, beta)``: ``beta = 0``
    is L1 itself (``c = 0``, and the division uses a safe ``beta``), so neither branch nor its
    gradient is NaN; the linear part is finite for every finite ``d`` and +inf at an infinite
    one, and the quadratic part overflows only past ``|d| ≈ 1.8e19``.

    Args:
      predictions: floating array of any shape.
      targets: array broadcastable with ``predictions``.
      beta: non-negative width of the quadratic zone; may be traced.
      where: optional boolean mask broadcastable to the broadcast shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> jaxloss.smooth_l1(jnp.array([0.5, 3.0]), jnp.zeros(2), reduction="none").tolist()
      [0.125, 2.5]

    References:
      Girshick, "Fast R-CNN", 2015. https://arxiv.org/abs/1504.08083
    """
    _checks.in_range(beta, "beta", low=0)
    predictions, targets, _, mask = _weighted_pair(predictions, targets, None, where)
    loss = _smooth_l1(predictions, targets, jnp.asarray(beta, predictions.dtype))
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def log_cosh(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Log-cosh loss, stable for large errors.

    .. math::
      \ell_i = \log\cosh(d_i) = |d_i| + \log(1 + e^{-2|d_i|}) - \log 2

    Like Huber with ``delta = 1`` but twice differentiable everywhere: about ``d²/2`` for
    small errors and ``|d| - log 2`` for large ones. Written so that ``cosh`` never
    overflows and small errors keep full relative precision; the gradient is ``tanh(d)``.

    Args:
      predictions: floating array of any shape.
      targets: array broadcastable with ``predictions``.
      where: optional boolean mask broadcastable to the broadcast shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> round(float(jaxloss.log_cosh(jnp.array([1000.0]), jnp.zeros(1))), 3)
      999.307
    """
    predictions, targets, _, mask = _weighted_pair(predictions, targets, None, where)
    return reduce_loss(_log_cosh(predictions, targets), reduction, where=mask, axis_name=axis_name)


@_numerics.elementwise(lambda p, t: (jnp.tanh(p - t), jnp.tanh(t - p)))
def _log_cosh(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """log cosh(predictions - targets); its derivative is tanh, written out."""
    # log cosh d = log1p(2 sinh²(d/2)) = log1p(u² / (2 (1 + u))) with u = expm1(|d|): one exp
    # and one log per element and no cancellation, so every error keeps full relative
    # precision. From |d| = 15 on, e^{-2|d|} < 1e-13 and log cosh grows exactly as |d| in
    # float32: the transcendentals see min(|d|, 15) (u² cannot overflow) and the rest is
    # added. Written without a select, XLA:CPU sums it in one YNNPACK kernel.
    size = jnp.abs(predictions - targets)
    near = jnp.minimum(size, 15)
    u = jnp.expm1(near)
    return jnp.log1p(jnp.square(u) / (2 * (1 + u))) + (size - near)
