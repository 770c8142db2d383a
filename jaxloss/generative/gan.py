"""GAN objectives for both players (logistic, Wasserstein, hinge) and WGAN-GP's penalty.

Every loss takes the discriminator's (critic's) outputs, one score per example ``[batch]``
or any shape; ``gradient_penalty`` takes the critic itself and two batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _numerics
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName, shard_offset


def gan_discriminator(
    real_logits: ArrayLike,
    fake_logits: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""The discriminator's loss of the original GAN (Goodfellow et al. 2014).

    .. math::
      \ell = -\log \sigma(D_{real}) - \log(1 - \sigma(D_{fake}))
           = \operatorname{softplus}(-D_{real}) + \operatorname{softplus}(D_{fake})

    binary cross-entropy with logits, real examples labelled 1 and generated ones 0.

    Numerics: written with ``softplus``, so it is exact and finite for all finite logits (never
    the log of a saturated sigmoid); it grows linearly, about ``|D|`` for a confidently wrong
    logit. Nothing is clamped.

    Args:
      real_logits: discriminator logits on real data, any shape (``[batch]``).
      fake_logits: logits on generated data, broadcastable with ``real_logits``.
      where: optional boolean mask of the broadcast shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the broadcast shape).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> round(float(jaxloss.gan_discriminator(jnp.array([0.0]), jnp.array([0.0]))), 4)
      1.3863

    References:
      Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.
    """
    (real, fake), shape = _checks.broadcast_floats(real_logits=real_logits, fake_logits=fake_logits)
    mask, (real, fake) = masked_inputs(where, shape, real, fake)
    loss = _numerics.softplus(-real) + _numerics.softplus(fake)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def gan_generator(
    fake_logits: ArrayLike,
    *,
    saturating: bool = False,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""The generator's loss of the original GAN: non-saturating, or the minimax one.

    .. math::
      \ell = -\log \sigma(D_{fake}) \quad\text{(default)}, \qquad
      \ell = \log(1 - \sigma(D_{fake})) = -\operatorname{softplus}(D_{fake})
      \quad(\texttt{saturating=True})

    The minimax form is the game's value as written; its gradient vanishes exactly when the
    discriminator confidently rejects the generated samples (early in training), which is
    why Goodfellow et al. recommend the non-saturating form.

    Numerics: written with ``softplus``, so both forms are exact and finite for all finite
    logits and grow at most linearly in ``|D|`` (the minimax one without bound below); nothing
    is clamped.

    Args:
      fake_logits: discriminator logits on generated data, any shape.
      saturating: use the minimax loss ``log(1 − σ(D))`` (negative, unbounded below).
      where: optional boolean mask of the logits' shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> round(float(jaxloss.gan_generator(jnp.array([0.0]))), 4)  # log 2
      0.6931
      >>> round(float(jaxloss.gan_generator(jnp.array([0.0]), saturating=True)), 4)
      -0.6931

    References:
      Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.
    """
    (fake,), shape = _checks.broadcast_floats(fake_logits=fake_logits)
    mask, (fake,) = masked_inputs(where, shape, fake)
    loss = -_numerics.softplus(fake) if saturating else _numerics.softplus(-fake)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def wasserstein_critic(
    real_scores: ArrayLike,
    fake_scores: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""The WGAN critic's loss (Arjovsky et al. 2017): ``D(fake) − D(real)``.

    Minimizing it maximizes the critic's estimate of the Wasserstein-1 distance, which is
    only meaningful for a 1-Lipschitz critic: add ``gradient_penalty`` (WGAN-GP) or clip
    the weights.

    Args:
      real_scores: critic scores on real data, any shape.
      fake_scores: scores on generated data, broadcastable with ``real_scores``.
      where: optional boolean mask of the broadcast shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> float(jaxloss.wasserstein_critic(jnp.array([2.0, 1.0]), jnp.array([0.5, 0.5])))
      -1.0

    References:
      Arjovsky, Chintala and Bottou, "Wasserstein Generative Adversarial Networks",
      ICML 2017.
    """
    (real, fake), shape = _checks.broadcast_floats(real_scores=real_scores, fake_scores=fake_scores)
    mask, (real, fake) = masked_inputs(where, shape, real, fake)
    return reduce_loss(fake - real, reduction, where=mask, axis_name=axis_name)


def wasserstein_generator(
    fake_scores: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""The WGAN generator's loss: ``−D(fake)`` (also the hinge GAN's generator loss).

    Numerics: ``−D`` is finite for every finite score; nothing is clamped, so the loss is
    unbounded below.

    Args:
      fake_scores: critic scores on generated data, any shape.
      where: optional boolean mask of the scores' shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> float(jaxloss.wasserstein_generator(jnp.array([1.0, 3.0])))
      -2.0

    References:
      Arjovsky, Chintala and Bottou, "Wasserstein Generative Adversarial Networks",
      ICML 2017.
    """
    (fake,), shape = _checks.broadcast_floats(fake_scores=fake_scores)
    mask, (fake,) = masked_inputs(where, shape, fake)
    return reduce_loss(-fake, reduction, where=mask, axis_name=axis_name)


def hinge_discriminator(
    real_scores: ArrayLike,
    fake_scores: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""The hinge GAN's discriminator loss (Lim and Ye 2017; SAGAN, BigGAN).

    .. math::
      \ell = \max(0, 1 - D_{real}) + \max(0, 1 + D_{fake})

    Scores already beyond the margin (real above 1, fake below −1) cost nothing.

    Numerics: finite for all finite scores (``relu`` of ``1 − D_real`` and ``1 + D_fake``);
    scores beyond the margin give exactly 0 with a zero gradient, and nothing else is clamped.

    Args:
      real_scores: discriminator scores on real data, any shape.
      fake_scores: scores on generated data, broadcastable with ``real_scores``.
      where: optional boolean mask of the broadcast shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> float(jaxloss.hinge_discriminator(jnp.array([0.5, 2.0]), jnp.array([-2.0, 0.0])))
      0.75

    References:
      Lim and Ye, "Geometric GAN", arXiv:1705.02894, 2017. Miyato et al., "Spectral
      Normalization for Generative Adversarial Networks", ICLR 2018.
    """
    (real, fake), shape = _checks.broadcast_floats(real_scores=real_scores, fake_scores=fake_scores)
    mask, (real, fake) = masked_inputs(where, shape, real, fake)
    loss = jax.nn.relu(1 - real) + jax.nn.relu(1 + fake)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def hinge_generator(
    fake_scores: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""The hinge GAN's generator loss: ``−D(fake)``, as ``wasserstein_generator``.

    Numerics: as for ``wasserstein_generator``, ``−D`` is finite for every finite score;
    nothing is clamped, so the loss is unbounded below.

    Args:
      fake_scores: discriminator scores on generated data, any shape.
      where: optional boolean mask of the scores' shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> float(jaxloss.hinge_generator(jnp.array([1.0, 3.0])))
      -2.0

    References:
      Lim and Ye, "Geometric GAN", arXiv:1705.02894, 2017.
    """
    return wasserstein_generator(fake_scores, where=where, reduction=reduction, axis_name=axis_name)


def gradient_penalty(
    critic: Callable[[jax.Array], jax.Array],
    real: ArrayLike,
    fake: ArrayLike,
    key: jax.Array,
    *,
    target: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""WGAN-GP's gradient penalty (Gulrajani et al. 2017).

    .. math::
      \ell_b = \big(\|\nabla_{\hat x} D(\hat x_b)\|_2 - k\big)^2, \qquad
      \hat x_b = \epsilon_b x_b + (1 - \epsilon_b) \tilde x_b, \quad \epsilon_b \sim U[0, 1]

    at points drawn uniformly on the segments between real samples ``x`` and generated
    samples ``x̃``, one ``ε`` per example drawn from ``key``. The paper adds it to the
    critic's loss with weight λ = 10 (the caller's choice, see the example):
    ``wasserstein_critic(D(x), D(x̃)) + 10 * gradient_penalty(D, x, x̃, key)``.

    The gradient of each example's score with respect to its own input comes from one
    ``jax.grad`` of the summed scores, which assumes the critic treats examples
    independently (no batch normalization; the paper recommends layer norm). The norm has a
    finite gradient at 0, so the second-order gradient (the critic's update) is finite.
    Rows masked by ``where`` go through the critic at a kept row's point (at ones where no
    row is kept, as on a device whose shard is all padding; never at their zeroed inputs,
    where a critic may be singular), and contribute nothing.

    Args:
      critic: ``x [batch, ...] -> scores [batch]`` (or ``[batch, 1]``), differentiable.
      real: ``[batch, ...]`` real samples.
      fake: generated samples of the same shape (pass them through ``stop_gradient`` if the
        generator should not be updated by this term).
      key: a ``jax.random`` key for the interpolation coefficients; with ``axis_name``,
        the same key on every device (the coefficients of the global batch are drawn and
        each device takes its rows, so the result equals the one-device one).
      target: k ≥ 0, the gradient norm aimed at (1: 1-Lipschitz; 0: zero-centred).
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-example penalties for ``reduction="none"``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxloss
      >>> critic = lambda x: 3.0 * x.sum(axis=-1)  # gradient norm 3·sqrt(2) everywhere
      >>> real, fake = jnp.ones((4, 2)), jnp.zeros((4, 2))
      >>> penalty = jaxloss.gradient_penalty(critic, real, fake, jax.random.key(0))
      >>> round(float(penalty), 4)  # (3·sqrt(2) − 1)²
      10.5147

    References:
      Gulrajani, Ahmed, Arjovsky, Dumoulin and Courville, "Improved Training of Wasserstein
      GANs", NeurIPS 2017.
    """
    _checks.in_range(target, "target", low=0)
    real = _checks.float_array(real, "real")
    fake = _checks.float_array(fake, "fake")
    _checks.equal_shapes(real=real, fake=fake)
    if real.ndim < 1:
        raise ValueError(f"`real` and `fake` need a batch axis, got shape {real.shape}.")
    batch = real.shape[0]
    mask, (real, fake) = masked_inputs(where, (batch,), real, fake)
    # The ε of the global batch, this device's block: sharded equals one device.
    offset, global_batch = shard_offset(batch, axis_name)
    epsilon = jax.random.uniform(key, (global_batch,) + (1,) * (real.ndim - 1), real.dtype)
    epsilon = jax.lax.dynamic_slice_in_dim(epsilon, offset, batch)
    interpolates = epsilon * real + (1 - epsilon) * fake
    if mask is not None and batch > 0:
        # Masked rows still go through the (batched) critic: at a kept row's point, not at
        # their zeroed inputs, where a critic singular at 0 (one normalizing its input) has
        # NaN second derivatives that would reach its parameters' gradient. With no row kept
        # (a device's shard all padding), at ones: any point but 0 serves.
        kept_row = jnp.where(
            jnp.any(mask), interpolates[jnp.argmax(mask)], jnp.ones_like(interpolates[0])
        )
        interpolates = jnp.where(
            mask.reshape((batch,) + (1,) * (real.ndim - 1)), interpolates, kept_row
        )

    def total_score(x: jax.Array) -> jax.Array:
        scores = jnp.asarray(critic(x))
        if scores.shape not in ((batch,), (batch, 1)):
            raise ValueError(
                f"`critic` must map [batch, ...] to scores [batch] or [batch, 1], got shape "
                f"{scores.shape} for a batch of {batch}."
            )
        return jnp.sum(scores)

    gradients = jax.grad(total_score)(interpolates)
    # An explicit width: ``-1`` is ambiguous for a batch of 0 rows.
    gradients = gradients.reshape(batch, math.prod(real.shape[1:]))
    counted = jnp.isfinite(gradients) if mask is None else jnp.isfinite(gradients) | ~mask[:, None]
    _checked.value_check(counted, "The gradient of `critic` at the interpolates holds NaN or inf.")
    norms = _numerics.safe_norm(gradients)
    loss = jnp.square(norms - jnp.asarray(target, norms.dtype))
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)
