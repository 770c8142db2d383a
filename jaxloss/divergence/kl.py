"""Kullback–Leibler divergences: ``kl_div`` (torch's) and the Gaussian KL of a VAE's latents.

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
    ``"batchmean"`` (sum divided by the batch size) is the true mean KL per example.

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
    if log_target:
        loss = jnp.exp(targets) * (targets - logprobs)
    else:
        loss = _numerics.xlogx(targets) - targets * logprobs
    return reduce_loss(
        loss,
        reduction,
        where=mask,
        allowed=(*_checks.REDUCTIONS, "batchmean"),
        axis_name=axis_name,
    )


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
