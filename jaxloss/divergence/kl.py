"""Kullback–Leibler divergences: ``kl_div`` (torch's), the Gaussian KL of a VAE's latents,
and ``generalized_kl`` (optax's, for unnormalized measures).

``gaussian_kl_terms`` (the per-dimension terms) is shared with ``generative.vae``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _numerics
from jaxloss._deprecation import renamed
from jaxloss._reduce import masked_inputs, reduce_loss, zero_masked
from jaxloss._sharding import AxisName


@renamed(log_input="logprobs", target="targets")
def kl_div(
    logprobs: ArrayLike,
    targets: ArrayLike,
    *,
    log_target: bool = False,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Pointwise Kullback-Leibler divergence, as ``torch.nn.functional.kl_div``.

    .. math::
      \ell_i = t_i (\log t_i - x_i)
      \quad(\text{or } e^{t_i} (t_i - x_i) \text{ with } \texttt{log\_target})

    where :math:`x` = ``logprobs`` are the model's log-probabilities and :math:`t` the
    target probabilities; :math:`0 \log 0 = 0`. Summed over the class axis this is
    :math:`\mathrm{KL}(t \,\|\, \exp x)`: the distillation loss of a student ``x`` against a
    teacher ``t``. As in torch, ``"mean"`` averages over *all elements*;
    ``"batchmean"`` (sum divided by the batch size) is the true mean KL per example; the
    batch is that of the broadcast inputs (torch divides by ``input.size(0)``, 1 for one
    row of log-probabilities broadcast against a batch of targets).

    Numerics: finite for finite ``logprobs`` and probability targets (log-probabilities with
    ``log_target``); a target of 0 contributes 0 (``0 log 0 = 0`` via ``xlogx``, with a finite
    gradient), and a −inf ``logprobs`` where ``t > 0`` gives +inf. A −inf ``logprobs`` with
    ``t = 0``, or a log-target of −inf, gives NaN (``0 · inf``), as in torch.

    Args:
      logprobs: log-probabilities, any shape (batch first for ``"batchmean"``).
      targets: probabilities (or log-probabilities with ``log_target=True``) broadcastable
        with ``logprobs``.
      log_target: whether ``targets`` are given in log space (static).
      where: optional boolean mask broadcastable to the broadcast shape. For
        ``"batchmean"`` the denominator counts the batch rows with an unmasked element.
      reduction: ``"mean"``, ``"batchmean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element terms for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> q = jnp.log(jnp.array([[0.5, 0.5]]))
      >>> round(float(jaxloss.kl_div(q, jnp.array([[0.9, 0.1]]), reduction="batchmean")), 4)
      0.3681

    References:
      Kullback and Leibler, "On Information and Sufficiency", 1951.
      https://doi.org/10.1214/aoms/1177729694
    """
    shape = _checks.broadcast_shapes(logprobs=logprobs, targets=targets)
    logprobs = _checks.float_array(logprobs, "logprobs", allow_inf=True)
    targets = _checks.float_array(targets, "targets", allow_inf=log_target)
    if not log_target:
        _checked.probabilities(targets, "targets")
    logprobs, targets = jnp.broadcast_to(logprobs, shape), jnp.broadcast_to(targets, shape)
    mask, (logprobs, targets) = masked_inputs(where, shape, logprobs, targets)
    loss = (_kl_of_log_targets if log_target else _kl)(logprobs, targets)
    return reduce_loss(
        loss,
        reduction,
        where=mask,
        allowed=(*_checks.REDUCTIONS, "batchmean"),
        axis_name=axis_name,
    )


# The pointwise terms with their partials written out (``_numerics.elementwise``), their
# values without a select (``_numerics.xlogx``): on XLA:CPU the value is one YNNPACK sum and
# the gradient one loop over the inputs. ``_kl``'s values are written out first
# (``_numerics.written_out``: its target is read twice).
@_numerics.elementwise(
    lambda logprobs, targets: (-targets, _numerics.xlogx_slope(targets) - logprobs),
    written=True,
)
def _kl(logprobs: jax.Array, targets: jax.Array) -> jax.Array:
    """``t (log t - x)``, 0 where ``t = 0``."""
    return _numerics.xlogx(targets) - targets * logprobs


@_numerics.elementwise(
    lambda logprobs, targets: (
        -jnp.exp(targets),
        jnp.exp(targets) * (targets - logprobs + 1),
    )
)
def _kl_of_log_targets(logprobs: jax.Array, targets: jax.Array) -> jax.Array:
    """``e^t (t - x)`` for log-space targets ``t``."""
    return jnp.exp(targets) * (targets - logprobs)


@_numerics.elementwise(
    lambda log_predictions, targets: (
        jnp.exp(log_predictions) - targets,
        _numerics.xlogx_slope(targets) - log_predictions - 1,
    )
)
def _generalized_kl(log_predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """``t log t - t x + e^x - t``."""
    return _numerics.xlogx(targets) - targets * log_predictions + jnp.exp(log_predictions) - targets


def gaussian_kl_terms(
    mean: ArrayLike, log_var: ArrayLike, *, axis: int = -1, where: ArrayLike | None = None
) -> jax.Array:
    """KL(N(μ, σ²) ‖ N(0, 1)) of each latent dimension: the inputs' broadcast shape.

    ``where`` masks the per-example shape (without the latent ``axis``): masked entries are
    zeroed first, so a huge masked log-variance sends no NaN into the gradient.
    """
    terms, _, _ = _terms_and_mask(mean, log_var, axis, where)
    return terms


def _terms_and_mask(
    mean: ArrayLike, log_var: ArrayLike, axis: int, where: ArrayLike | None
) -> tuple[jax.Array, jax.Array | None, int]:
    """``gaussian_kl_terms``, the per-example mask and the latent axis."""
    shape = _checks.broadcast_shapes(mean=mean, log_var=log_var)
    mean = jnp.broadcast_to(_checks.float_array(mean, "mean"), shape)
    log_var = jnp.broadcast_to(_checks.float_array(log_var, "log_var"), shape)
    if not shape:
        raise ValueError("`mean` and `log_var` need a latent axis, got scalars.")
    latent = _checks.class_axis(axis, len(shape), "mean")
    mask, _ = masked_inputs(where, shape[:latent] + shape[latent + 1 :])
    if mask is not None:
        # The latent axis may sit anywhere: the mask gets it back to reach every dimension.
        mean, log_var = zero_masked(jnp.expand_dims(mask, latent), mean, log_var)
    return -0.5 * (1 + log_var - jnp.square(mean) - jnp.exp(log_var)), mask, latent


def gaussian_kl(
    mean: ArrayLike,
    log_var: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""KL divergence of a diagonal Gaussian from the standard normal: the VAE prior term.

    .. math::
      \mathrm{KL}\big(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(0, 1)\big)
      = -\tfrac12 \sum_{\text{axis}} \left(1 + \log\sigma^2 - \mu^2 - \sigma^2\right)

    Added to a reconstruction loss it gives the negative ELBO of a variational autoencoder;
    parametrizing by ``log_var`` keeps :math:`\sigma^2 > 0` without constraints.

    Numerics: nothing is clamped: ``σ² = exp(log_var)`` overflows float32 past
    ``log_var ≈ 88.7`` and ``μ²`` past ``|μ| ≈ 1.8e19``, and the divergence is then +inf. A very
    negative ``log_var`` costs about ``−log_var / 2``, linear, so it stays finite.

    Args:
      mean: :math:`\mu`, e.g. ``[batch, latent_dim]``.
      log_var: :math:`\log\sigma^2`, broadcastable with ``mean``.
      axis: the latent axis summed over.
      where: optional boolean mask, broadcastable to ``"none"``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the inputs' shape without ``axis``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-example divergences for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> float(jaxloss.gaussian_kl(jnp.zeros((2, 3)), jnp.zeros((2, 3))))
      0.0

    References:
      Kingma and Welling, "Auto-Encoding Variational Bayes", 2013.
      https://arxiv.org/abs/1312.6114
    """
    terms, mask, latent = _terms_and_mask(mean, log_var, axis, where)
    return reduce_loss(jnp.sum(terms, axis=latent), reduction, where=mask, axis_name=axis_name)


def _summed_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    """``axis`` (an int, a tuple of ints, or None for all) as sorted non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    return tuple(sorted({_checks.class_axis(a, ndim, "log_predictions") for a in axes}))


def generalized_kl(
    log_predictions: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Generalized KL divergence of unnormalized measures, as optax's
    ``generalized_kl_divergence``.

    .. math::
      D(t \,\|\, p) = \sum_{\text{axis}} \left(t \log t - t x + e^{x} - t\right),
      \quad x = \log p

    with :math:`x` = ``log_predictions`` and :math:`t` = ``targets``, non-negative but not
    summing to 1; :math:`0 \log 0 = 0`. The Bregman divergence of :math:`f(t) = t\log t - t`:
    non-negative, 0 only at :math:`p = t`, and equal to :math:`\mathrm{KL}(t \,\|\, p)` when
    both sum to 1. The loss of non-negative matrix factorization with the KL objective and of
    fitting intensities or counts.

    Numerics: ``e^x`` overflows float32 past ``x ≈ 88.7`` (+inf). A ``log_predictions`` of
    −inf (zero mass) is allowed: +inf where ``t > 0``, NaN (``0·inf``) where ``t = 0``, as in
    optax. A target of 0 contributes ``e^x`` with finite gradients (optax's gradient in
    ``targets`` is NaN there).

    Args:
      log_predictions: log of the predicted measure, e.g. ``[batch, dim]``.
      targets: the target measure (non-negative), broadcastable with ``log_predictions``.
      axis: the axis, tuple of axes, or None (all) summed over (static), as optax's.
      where: optional boolean mask broadcastable to ``"none"`` (whole examples; optax's
        ``where`` masks elements inside the sum instead).
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the inputs' broadcast shape without
        ``axis``: optax's output).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-example divergences for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> log_p, t = jnp.log(jnp.array([[1.0, 2.0]])), jnp.array([[1.0, 4.0]])
      >>> round(float(jaxloss.generalized_kl(log_p, t)), 4)
      0.7726

    References:
      Boyd and Vandenberghe, "Convex Optimization", 2004, p. 90.
      https://stanford.edu/~boyd/cvxbook/bv_cvxbook.pdf
    """
    shape = _checks.broadcast_shapes(log_predictions=log_predictions, targets=targets)
    log_predictions = _checks.float_array(log_predictions, "log_predictions", allow_inf=True)
    targets = _checks.float_array(targets, "targets", allow_int=True)
    axes = _summed_axes(axis, len(shape))
    log_predictions = jnp.broadcast_to(log_predictions, shape)
    targets = jnp.broadcast_to(targets, shape)
    mask, _ = masked_inputs(where, tuple(n for i, n in enumerate(shape) if i not in axes))
    if mask is not None:
        log_predictions, targets = zero_masked(
            jnp.expand_dims(mask, axes), log_predictions, targets
        )
    _checked.value_check(targets >= 0, "`targets` must be non-negative.")
    terms = _generalized_kl(log_predictions, targets)
    return reduce_loss(jnp.sum(terms, axis=axes), reduction, where=mask, axis_name=axis_name)
