"""Negative log-likelihoods of real and count targets: Gaussian and Poisson, as torch's.

The per-element loss has the broadcast shape of the inputs (for ``gaussian_nll``, after a
variance shared over the last axis gets that axis back, as in torch).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _numerics
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName

_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


def _gaussian_nll_partials(
    predictions: jax.Array, targets: jax.Array, variances: jax.Array, eps: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, None]:
    # The variance clamped below at eps passes its gradient through, as torch's clamp under
    # no_grad. Halved by a division: the value's literal 0.5, shared, would be written out
    # by XLA as an array.
    variances = jnp.maximum(variances, eps)
    scaled = (predictions - targets) / variances
    return scaled, -scaled, (1 / variances - jnp.square(scaled)) / 2, None


@_numerics.elementwise(_gaussian_nll_partials)
def _gaussian_nll(
    predictions: jax.Array, targets: jax.Array, variances: jax.Array, eps: jax.Array
) -> jax.Array:
    """``(log v + d² / v) / 2`` with ``v`` clamped below at ``eps``; its partials written out
    (the clamp passes the variance's gradient through, as torch's clamp under no_grad)."""
    variances = jnp.maximum(variances, eps)
    return 0.5 * (jnp.log(variances) + jnp.square(predictions - targets) / variances)


# exp(x) - t x and its partials exp(x) - t, -x.
@_numerics.elementwise(lambda log_rates, targets: (jnp.exp(log_rates) - targets, -log_rates))
def _poisson_of_log_rates(log_rates: jax.Array, targets: jax.Array) -> jax.Array:
    return jnp.exp(log_rates) - targets * log_rates


def _torch_variance_shape(variances: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``variances`` as torch's ``gaussian_nll_loss`` lays them against ``predictions``.

    A scalar, the predictions' shape, or that shape without its last axis (a variance shared
    over the last axis, which gets the axis back as size 1); or the predictions' rank with
    one axis of size 1 where the shapes differ (torch's homoscedastic case).
    """
    given = tuple(np.shape(variances))
    if given in ((), shape):
        return variances
    if given == shape[:-1]:
        return variances[..., None]
    if (
        len(given) == len(shape)
        and sum(v for p, v in zip(shape, given, strict=True) if p != v) == 1
    ):
        return variances
    raise ValueError(
        f"`variances` of shape {given} must be a scalar, have the shape {shape} of "
        "`predictions`, that shape without its last axis, or that shape with one axis of "
        "size 1 (torch's rule)."
    )


def gaussian_nll(
    predictions: ArrayLike,
    targets: ArrayLike,
    variances: ArrayLike,
    *,
    full: bool = False,
    eps: ArrayLike = 1e-6,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Gaussian negative log-likelihood, as ``torch.nn.functional.gaussian_nll_loss``.

    .. math::
      \ell_i = \tfrac12 \left(\log \max(\sigma^2_i, \epsilon)
               + \frac{(\text{predictions}_i - \text{targets}_i)^2}{\max(\sigma^2_i, \epsilon)}
               \right) \;\left(+ \tfrac12 \log 2\pi \text{ with } \texttt{full}\right)

    The loss of a network that predicts a mean and a variance for each target
    (heteroscedastic regression), or of one variance shared by many targets. The variance
    may be given per element, as a scalar, without the predictions' last axis (shared over
    it), or with one axis of size 1: torch's shape rules exactly.

    As in torch, the variance is clamped at ``eps`` for the value but not for the gradient:
    where ``σ² < eps`` the gradient in ``variances`` is that of the loss at ``σ² = eps``, not
    0, so a variance driven below ``eps`` is still pushed back. torch raises on a negative
    variance; jaxloss checks that in checked mode (``jaxloss.checked``), and otherwise clamps
    it like a small one.

    Numerics: the clamp keeps ``log σ²`` and the division finite for ``eps > 0``; a term is
    +inf only where ``d²/eps`` overflows float32.

    Args:
      predictions: the predicted means, floating, any shape.
      targets: the observed values, broadcastable with ``predictions``.
      variances: the predicted variances σ² (not standard deviations), non-negative:
        a scalar, ``predictions.shape``, ``predictions.shape[:-1]`` or one axis of size 1.
      full: add the constant ``½ log 2π`` (static).
      eps: non-negative floor of the variances; may be traced.
      where: optional boolean mask broadcastable to the broadcast shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element losses (the broadcast shape of the inputs) for
      ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> means, variances = jnp.array([[0.0, 1.0]]), jnp.array([4.0])
      >>> loss = jaxloss.gaussian_nll(means, jnp.array([[2.0, 1.0]]), variances, reduction="none")
      >>> [[round(x, 4) for x in row] for row in loss.tolist()]
      [[1.1931, 0.6931]]

    References:
      Nix and Weigend, "Estimating the mean and variance of the target probability
      distribution", 1994. https://doi.org/10.1109/ICNN.1994.374138
    """
    _checks.in_range(eps, "eps", low=0)
    predictions = _checks.float_array(predictions, "predictions")
    targets = _checks.float_array(targets, "targets", allow_int=True)
    variances = _checks.float_array(variances, "variances", allow_int=True)
    variances = _torch_variance_shape(variances, predictions.shape)
    shape = _checks.broadcast_shapes_as_torch(
        predictions=predictions, targets=targets, variances=variances
    )
    mask, (predictions, targets, variances) = masked_inputs(
        where, shape, *(jnp.broadcast_to(a, shape) for a in (predictions, targets, variances))
    )
    _checked.value_check(variances >= 0, "`variances` must be non-negative.")
    loss = _gaussian_nll(predictions, targets, variances, jnp.asarray(eps, variances.dtype))
    if full:
        loss = loss + _HALF_LOG_TWO_PI
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def _stirling(targets: jax.Array) -> jax.Array:
    """torch's Stirling term ``t log t − t + ½ log(2π t)`` for ``t > 1``, else 0.

    The term is computed on a safe ``t`` where it is left out, so ``log 0`` and the log of a
    negative target never reach the gradient (torch's gradient is NaN there).
    """
    small = targets <= 1
    safe = jnp.where(small, 2, targets)
    term = safe * jnp.log(safe) - safe + 0.5 * jnp.log(2 * math.pi * safe)
    return jnp.where(small, 0, term)


def poisson_nll(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    log_input: bool = True,
    full: bool = False,
    eps: ArrayLike = 1e-8,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Poisson negative log-likelihood, as ``torch.nn.functional.poisson_nll_loss``.

    .. math::
      \ell_i = e^{x_i} - t_i x_i \;\;(\texttt{log\_input})
      \qquad\text{or}\qquad \ell_i = x_i - t_i \log(x_i + \epsilon)

    with :math:`x` = ``predictions`` (the log-rate, or with ``log_input=False`` the rate λ)
    and :math:`t` = ``targets`` (counts). The constant :math:`\log t!` is left out unless
    ``full``, which adds torch's Stirling approximation of it,
    :math:`t \log t - t + \tfrac12 \log(2\pi t)`, for targets above 1 only.

    The loss of count regression (events, photons, spikes): minimized at
    :math:`\lambda = t`, with the variance growing with the mean as a Poisson's does.

    Numerics: ``e^x`` overflows float32 past ``x ≈ 88.7`` (+inf, as in torch); with
    ``log_input=False`` a rate with ``x + eps ≤ 0`` gives ``log`` of 0 or less (inf or NaN,
    as in torch). The Stirling term's gradient in ``targets`` is 0 where it is left out
    (torch's is NaN at targets ≤ 0).

    Args:
      predictions: log-rates (rates with ``log_input=False``), floating, any shape.
      targets: counts (or any non-negative values), broadcastable with ``predictions``.
      log_input: whether ``predictions`` are log-rates (static).
      full: add the Stirling term (static).
      eps: added to the rate inside the log when ``log_input=False``; may be traced.
      where: optional boolean mask broadcastable to the broadcast shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> rates, counts = jnp.array([1.0, 2.0]), jnp.array([0.0, 3.0])
      >>> loss = jaxloss.poisson_nll(rates, counts, log_input=False, reduction="none")
      >>> [round(x, 4) for x in loss.tolist()]
      [1.0, -0.0794]

    References:
      The Poisson likelihood and Stirling's approximation of :math:`\log t!`; torch's
      ``PoissonNLLLoss``. https://pytorch.org/docs/stable/generated/torch.nn.PoissonNLLLoss.html
    """
    _checks.in_range(eps, "eps", low=0)
    shape = _checks.broadcast_shapes_as_torch(predictions=predictions, targets=targets)
    predictions = _checks.float_array(predictions, "predictions")
    targets = _checks.float_array(targets, "targets", allow_int=True)
    mask, (predictions, targets) = masked_inputs(
        where, shape, jnp.broadcast_to(predictions, shape), jnp.broadcast_to(targets, shape)
    )
    if log_input:
        loss = _poisson_of_log_rates(predictions, targets)
    else:
        if mask is not None:
            # A masked rate of 0 would meet log(0 + eps) with eps = 0: 0/0 in the gradient.
            predictions = jnp.where(mask, predictions, 1)
        loss = predictions - targets * jnp.log(predictions + jnp.asarray(eps, predictions.dtype))
    if full:
        loss = loss + _stirling(targets)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)
