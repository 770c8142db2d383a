"""GAN objectives, WGAN-GP's gradient penalty and the VAE's ELBO: torch parity and edge cases."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.test_util import check_grads

import jaxloss
from tests.generative import reference as ref

EXTREME = np.array([-1e4, -50.0, 0.0, 50.0, 1e4], np.float32)


def _torch_value_and_grads(fn, *arrays):
    tensors = [torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in arrays]
    value = fn(*tensors)
    value.backward()
    return value.item(), [t.grad.numpy() for t in tensors]


def _jax_value_and_grads(fn, *arrays):
    return jax.value_and_grad(fn, argnums=tuple(range(len(arrays))))(*arrays)


def _assert_close(ours, theirs, rtol=1e-5):
    (value, grads), (expected, expected_grads) = ours, theirs
    np.testing.assert_allclose(value, expected, rtol=rtol, atol=1e-7)
    for g, e in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-7)


def _logits(seed, n=16):
    return (3 * np.random.default_rng(seed).normal(size=n)).astype(np.float32)


def test_gan_discriminator_is_torch_bce_with_real_1_and_fake_0():
    real, fake = _logits(0), _logits(1)

    def theirs(r, f):
        ones, zeros = torch.ones_like(r), torch.zeros_like(f)
        return F.binary_cross_entropy_with_logits(r, ones) + F.binary_cross_entropy_with_logits(
            f, zeros
        )

    _assert_close(
        _jax_value_and_grads(jaxloss.gan_discriminator, real, fake),
        _torch_value_and_grads(theirs, real, fake),
    )


@pytest.mark.parametrize("saturating", [False, True])
def test_gan_generator_matches_torch(saturating):
    fake = _logits(2)

    def theirs(f):
        if saturating:  # log(1 − σ(f)) = −BCE(f, 0)
            return -F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
        return F.binary_cross_entropy_with_logits(f, torch.ones_like(f))

    _assert_close(
        _jax_value_and_grads(lambda f: jaxloss.gan_generator(f, saturating=saturating), fake),
        _torch_value_and_grads(theirs, fake),
    )


def test_saturating_generator_gradient_vanishes_where_the_discriminator_wins():
    # Goodfellow et al.'s reason for the non-saturating loss: at D(G(z)) ≈ 0 the minimax
    # loss has almost no gradient, the non-saturating one a gradient of about −1.
    confident_fake = jnp.array([-12.0])
    minimax = jax.grad(lambda f: jaxloss.gan_generator(f, saturating=True))(confident_fake)
    non_saturating = jax.grad(jaxloss.gan_generator)(confident_fake)
    assert abs(float(minimax[0])) < 1e-5
    assert float(non_saturating[0]) == pytest.approx(-1.0, abs=1e-5)


@pytest.mark.parametrize(
    "fn",
    [
        jaxloss.gan_discriminator,
        jaxloss.wasserstein_critic,
        jaxloss.hinge_discriminator,
    ],
    ids=lambda f: f.__name__,
)
def test_two_sided_gan_losses_are_finite_at_extreme_scores(fn):
    real, fake = np.meshgrid(EXTREME, EXTREME)
    value, grads = _jax_value_and_grads(fn, real.ravel(), fake.ravel())
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads)


@pytest.mark.parametrize(
    "fn",
    [
        jaxloss.gan_generator,
        lambda f: jaxloss.gan_generator(f, saturating=True),
        jaxloss.wasserstein_generator,
        jaxloss.hinge_generator,
    ],
    ids=["non_saturating", "saturating", "wasserstein", "hinge"],
)
def test_generator_losses_are_finite_at_extreme_scores(fn):
    value, grad = jax.value_and_grad(fn)(EXTREME)
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_hinge_discriminator_hand_computed():
    real, fake = np.array([0.5, 2.0, -1.0]), np.array([-2.0, 0.0, 1.0])
    # real: 0.5, 0, 2; fake: 0, 1, 2.
    np.testing.assert_allclose(
        jaxloss.hinge_discriminator(real, fake, reduction="none"), [0.5, 1.0, 4.0]
    )


# ------------------------------------------------------------------------- gradient penalty


class _TorchCritic:
    """D(x) = Σ_k v_k tanh((flatten(x) W)_k), in torch and in JAX with the same weights."""

    def __init__(self, features, seed=0):
        rng = np.random.default_rng(seed)
        self.w = rng.normal(size=(features, 5)) / np.sqrt(features)
        self.v = rng.normal(size=5)

    def jax(self, w, v):
        return lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w) @ v

    def torch_penalty(self, real, fake, epsilon):
        w = torch.tensor(self.w, requires_grad=True)
        v = torch.tensor(self.v, requires_grad=True)
        eps = torch.tensor(np.asarray(epsilon, np.float64)).reshape(-1, *[1] * (real.ndim - 1))
        x_hat = eps * torch.tensor(real, dtype=torch.float64) + (1 - eps) * torch.tensor(
            fake, dtype=torch.float64
        )
        x_hat.requires_grad_(True)
        scores = torch.tanh(x_hat.reshape(len(x_hat), -1) @ w) @ v
        (gradient,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
        penalty = ((gradient.reshape(len(x_hat), -1).norm(dim=1) - 1) ** 2).mean()
        penalty.backward()
        return penalty.item(), w.grad.numpy(), v.grad.numpy()


def test_gradient_penalty_and_its_second_order_gradient_match_torch():
    # Image-shaped samples: one ε per example, broadcast over the other axes.
    rng = np.random.default_rng(0)
    real = rng.normal(size=(6, 3, 2, 2)).astype(np.float32)
    fake = rng.normal(size=(6, 3, 2, 2)).astype(np.float32)
    critic = _TorchCritic(12)
    key = jax.random.key(3)
    epsilon = np.asarray(jax.random.uniform(key, (6, 1, 1, 1)))
    expected, expected_dw, expected_dv = critic.torch_penalty(real, fake, epsilon)

    def penalty(w, v):
        return jaxloss.gradient_penalty(critic.jax(w, v), real, fake, key)

    w, v = jnp.asarray(critic.w, jnp.float32), jnp.asarray(critic.v, jnp.float32)
    value, (dw, dv) = jax.value_and_grad(penalty, argnums=(0, 1))(w, v)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    np.testing.assert_allclose(dw, expected_dw, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dv, expected_dv, rtol=1e-4, atol=1e-6)
    with jax.enable_x64(True):
        check_grads(
            lambda w, v: jaxloss.gradient_penalty(
                critic.jax(w, v), real.astype(np.float64), fake.astype(np.float64), key
            ),
            (jnp.asarray(critic.w), jnp.asarray(critic.v)),
            order=1,
            modes=("rev",),
        )


def test_gradient_penalty_interpolates_between_real_and_fake():
    # With D(x) = ½‖x‖², ∇D(x̂) = x̂ and ‖x̂‖ = ε‖real‖ when fake = 0: ε is recovered.
    real = np.tile(np.array([[3.0, 4.0]], np.float32), (64, 1))
    fake = np.zeros_like(real)
    key = jax.random.key(0)
    penalties = jaxloss.gradient_penalty(
        lambda x: 0.5 * jnp.sum(x**2, axis=1), real, fake, key, target=0.0, reduction="none"
    )
    epsilon = np.sqrt(np.asarray(penalties)) / 5
    np.testing.assert_allclose(epsilon, np.asarray(jax.random.uniform(key, (64, 1)))[:, 0], 1e-5)
    assert 0 <= epsilon.min() and epsilon.max() <= 1 and epsilon.std() > 0.1


def test_gradient_penalty_is_finite_where_the_critic_is_flat():
    # A zero gradient norm: the penalty is target², and the norm's gradient is 0, not NaN.
    real = np.ones((4, 3), np.float32)

    def penalty(scale):
        return jaxloss.gradient_penalty(
            lambda x: scale * jnp.sum(jnp.zeros_like(x), axis=1) + scale,
            real,
            real,
            jax.random.key(1),
        )

    value, grad = jax.value_and_grad(penalty)(2.0)
    assert float(value) == 1.0 and np.isfinite(grad)


def test_gradient_penalty_where_masks_examples():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    critic = _TorchCritic(3, seed=4)
    key = jax.random.key(5)
    keep = np.array([True, False, True, True, False, True])
    per_example = jaxloss.gradient_penalty(
        critic.jax(critic.w, critic.v), real, fake, key, reduction="none"
    )
    masked = jaxloss.gradient_penalty(critic.jax(critic.w, critic.v), real, fake, key, where=keep)
    np.testing.assert_allclose(masked, np.asarray(per_example)[keep].mean(), rtol=1e-6)
    epsilon = np.asarray(jax.random.uniform(key, (6, 1)))
    np.testing.assert_allclose(
        per_example, ref.gradient_penalty(critic.w, critic.v, real, fake, epsilon), rtol=1e-5
    )
    grads = jax.grad(
        lambda r: jaxloss.gradient_penalty(critic.jax(critic.w, critic.v), r, fake, key, where=keep)
    )(real)
    assert np.all(np.asarray(grads)[~keep] == 0) and np.any(np.asarray(grads)[keep] != 0)


def test_gradient_penalty_errors():
    real = np.ones((4, 3), np.float32)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="critic"):
        jaxloss.gradient_penalty(lambda x: x, real, real, key)
    with pytest.raises(ValueError, match="equal shapes"):
        jaxloss.gradient_penalty(lambda x: x.sum(1), real, real[:3], key)


# ---------------------------------------------------------------------------------- ELBO


def test_elbo_is_reconstruction_plus_beta_gaussian_kl():
    rng = np.random.default_rng(0)
    reconstruction = rng.uniform(size=5).astype(np.float32)
    mean, log_var = rng.normal(size=(2, 5, 3)).astype(np.float32)
    ours = jaxloss.elbo_loss(reconstruction, mean, log_var, beta=4.0, reduction="none")
    kl = jaxloss.gaussian_kl(mean, log_var, reduction="none")
    np.testing.assert_allclose(ours, reconstruction + 4.0 * kl, rtol=1e-6)
    # torch's closed-form KL of the two Normals, as an independent check of the KL term.
    q = torch.distributions.Normal(torch.tensor(mean), torch.tensor(np.exp(0.5 * log_var)))
    p = torch.distributions.Normal(torch.zeros(5, 3), torch.ones(5, 3))
    torch_kl = torch.distributions.kl_divergence(q, p).sum(-1).numpy()
    np.testing.assert_allclose(ours, reconstruction + 4.0 * torch_kl, rtol=1e-5)


def test_free_bits_charge_the_floor_and_stop_the_gradient_of_quiet_dimensions():
    # Dimension 0 carries 2 nats on average, dimension 1 almost nothing.
    mean = np.array([[2.0, 0.1], [2.0, -0.1]], np.float32)
    log_var = np.zeros((2, 2), np.float32)
    reconstruction = np.zeros(2, np.float32)

    def loss(m):
        return jaxloss.elbo_loss(reconstruction, m, log_var, free_bits=0.5)

    value, grad = jax.value_and_grad(loss)(mean)
    # Dimension 0: KL 2 > 0.5, charged as is; dimension 1: 0.005 < 0.5, charged 0.5.
    assert float(value) == pytest.approx(2.0 + 0.5, rel=1e-6)
    np.testing.assert_allclose(np.asarray(grad)[:, 1], 0.0)
    np.testing.assert_allclose(np.asarray(grad)[:, 0], mean[:, 0] / 2, rtol=1e-6)
    np.testing.assert_allclose(
        value, ref.elbo_loss(reconstruction, mean, log_var, free_bits=0.5).mean(), rtol=1e-6
    )


def test_free_bits_average_over_the_unmasked_batch():
    rng = np.random.default_rng(2)
    reconstruction = rng.uniform(size=6).astype(np.float32)
    mean, log_var = rng.normal(size=(2, 6, 4)).astype(np.float32)
    keep = np.array([True, True, False, True, False, False])
    masked = jaxloss.elbo_loss(reconstruction, mean, log_var, free_bits=0.6, where=keep)
    expected = ref.elbo_loss(reconstruction, mean, log_var, free_bits=0.6, where=keep)
    np.testing.assert_allclose(masked, expected[keep].mean(), rtol=1e-6)


def test_elbo_errors():
    mean = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="reconstruction"):
        jaxloss.elbo_loss(np.zeros(3, np.float32), mean, mean)
    with pytest.raises(ValueError, match=r"\[batch, latent_dim\]"):
        jaxloss.elbo_loss(np.zeros((), np.float32), mean[0], mean[0])
    with pytest.raises(ValueError, match="broadcast"):
        jaxloss.elbo_loss(np.zeros(4, np.float32), mean, mean[:, :2])
