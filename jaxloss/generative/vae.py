"""The VAE objective: the negative ELBO with a β weight and free bits.

``elbo_loss`` takes a per-example reconstruction loss ``[batch]`` and the encoder's ``mean``
and ``log_var`` ``[batch, latent_dim]``; the KL terms are ``divergence.kl``'s.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._reduce import linear_weights, masked_inputs, reduce_loss
from jaxloss._sharding import AxisName, global_sum
from jaxloss.divergence.kl import gaussian_kl_terms


def _free_bits(
    kl: jax.Array, free_bits: ArrayLike, mask: jax.Array | None, axis_name: AxisName
) -> jax.Array:
    """``kl`` with the latent dimensions whose batch mean is below ``free_bits`` floored.

    The batch mean follows the rule of every "mean" (masked rows left out, global under
    ``axis_name``); masked rows' KL is 0 already (zeroed inputs). A dimension is floored
    where its mean is *below* the floor, False for NaN: a NaN KL is charged as it is.
    """
    coefficients = linear_weights(mask, kl.shape[:-1], "mean", axis_name=axis_name, dtype=kl.dtype)
    batch_mean = global_sum(jnp.tensordot(coefficients, kl, axes=kl.ndim - 1), axis_name)
    floor = jnp.asarray(free_bits, kl.dtype)
    below = (batch_mean < floor).reshape((1,) * (kl.ndim - 1) + (-1,))
    return jnp.where(below, floor, kl)


def elbo_loss(
    reconstruction: ArrayLike,
    mean: ArrayLike,
    log_var: ArrayLike,
    *,
    beta: ArrayLike = 1.0,
    free_bits: ArrayLike = 0.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""The negative ELBO of a Gaussian VAE, with a β weight and optional free bits.

    .. math::
      \ell_b = r_b + \beta \sum_j \mathrm{KL}_{b,j}, \qquad
      \mathrm{KL}_{b,j} = -\tfrac12 (1 + \log\sigma^2_{b,j} - \mu^2_{b,j} - \sigma^2_{b,j})

    ``r`` is the reconstruction term of the caller's choice, one value per example (the
    negative log-likelihood of the decoder: a summed ``binary_cross_entropy`` for binary
    pixels, a summed ``mse`` for a fixed-variance Gaussian, ...); the KL term is
    ``gaussian_kl``'s, per latent dimension. ``beta > 1`` is the β-VAE (Higgins et al.).

    Free bits (Kingma et al. 2016) keep the encoder from collapsing latent dimensions to
    the prior: each dimension ``j`` is charged ``max(λ, mean_b KL_{b,j})``, its KL averaged
    over the (unmasked, and with ``axis_name`` global) batch, so a dimension below λ nats
    gets no gradient toward the prior. Per example this is written as ``KL_{b,j}`` for the
    dimensions above λ and ``λ`` for the others, so ``"mean"`` is exactly their objective.

    Numerics: the KL term is ``gaussian_kl``'s and nothing is clamped: it is +inf past
    ``log_var ≈ 88.7`` (where ``exp`` overflows float32) or ``|μ| ≈ 1.8e19``, and the loss is
    then NaN if ``beta = 0`` (``0 · inf``). Masked rows are zeroed before the free-bits batch
    mean, so their values do not reach it; NaN in an unmasked row makes its dimensions' means
    NaN, which are then charged unfloored, so the loss is NaN.

    Args:
      reconstruction: ``[batch]`` per-example reconstruction loss (negative
        log-likelihood).
      mean: ``[batch, latent_dim]`` encoder means μ.
      log_var: ``[batch, latent_dim]`` encoder log-variances log σ².
      beta: β, the weight of the KL term.
      free_bits: λ in nats per latent dimension (0: none).
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis over which the batch is split; the free-bits batch average and
        the reduction are then global.

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> mean, log_var = jnp.array([[1.0, 0.0]]), jnp.zeros((1, 2))  # KL = 0.5 + 0
      >>> float(jaxloss.elbo_loss(jnp.array([2.0]), mean, log_var, beta=2.0))
      3.0
      >>> float(jaxloss.elbo_loss(jnp.array([2.0]), mean, log_var, free_bits=0.25))
      2.75

    References:
      Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014. Higgins et al.,
      "β-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework",
      ICLR 2017. Kingma et al., "Improved Variational Inference with Inverse
      Autoregressive Flow", NeurIPS 2016 (free bits).
    """
    _checks.in_range(beta, "beta", low=0)
    _checks.in_range(free_bits, "free_bits", low=0)

    shape = _checks.broadcast_shapes(mean=mean, log_var=log_var)
    if len(shape) < 2:
        raise ValueError(
            f"`mean` and `log_var` must be [batch, latent_dim], got broadcast shape {shape}."
        )
    (mean, log_var), _ = _checks.broadcast_floats(mean=mean, log_var=log_var)
    reconstruction = _checks.float_array(reconstruction, "reconstruction")
    if reconstruction.shape != shape[:-1]:
        raise ValueError(
            f"`reconstruction` must have one value per example, shape {shape[:-1]}, got "
            f"{reconstruction.shape}."
        )
    mask, (reconstruction, mean, log_var) = masked_inputs(
        where, shape[:-1], reconstruction, mean, log_var
    )
    kl = gaussian_kl_terms(mean, log_var)
    if not _checks.is_static_zero(free_bits):
        kl = _free_bits(kl, free_bits, mask, axis_name)
    loss = reconstruction + jnp.asarray(beta, kl.dtype) * jnp.sum(kl, axis=-1)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)
