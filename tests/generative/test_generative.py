"""GAN objectives, WGAN-GP's gradient penalty and the VAE's ELBO: torch parity and edge cases."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.test_util import check_grads

import jaxloss
from tests._suite import compiled
from tests.generative import reference as ref

EXTREME = np.array([-1e4, -50.0, 0.0, 50.0, 1e4], np.float32)


def _torch_value_and_grads(fn, *arrays):
    tensors = [torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in arrays]
    value = fn(*tensors)
    value.backward()
    return value.item(), [t.grad.numpy() for t in tensors]


# Every JAX computation of a test runs in one compiled function (eager dispatch would compile
# each operation on its own); parametrized cases with the same inputs are computed together,
# once, by a cached function, and each case checks its own part.


def _jax_value_and_grads(fn, *arrays):
    """``compiled.value_and_grads``, compiled (and returned as NumPy)."""
    out = jax.jit(functools.partial(compiled.value_and_grads, fn))(*arrays)
    return jax.tree.map(np.asarray, out)


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


@functools.cache
def _gan_generator_ours():
    @jax.jit
    def run(fake):
        return [
            compiled.value_and_grads(lambda f, s=s: jaxloss.gan_generator(f, saturating=s), fake)
            for s in (False, True)
        ]

    return jax.tree.map(np.asarray, run(_logits(2)))


@pytest.mark.parametrize("saturating", [False, True])
def test_gan_generator_matches_torch(saturating):
    fake = _logits(2)

    def theirs(f):
        if saturating:  # log(1 − σ(f)) = −BCE(f, 0)
            return -F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
        return F.binary_cross_entropy_with_logits(f, torch.ones_like(f))

    _assert_close(_gan_generator_ours()[int(saturating)], _torch_value_and_grads(theirs, fake))


def test_saturating_generator_gradient_vanishes_where_the_discriminator_wins():
    # Goodfellow et al.'s reason for the non-saturating loss: at D(G(z)) ≈ 0 the minimax
    # loss has almost no gradient, the non-saturating one a gradient of about −1.
    confident_fake = np.array([-12.0], np.float32)

    @jax.jit
    def run(f):
        minimax = jax.grad(lambda f: jaxloss.gan_generator(f, saturating=True))(f)
        return minimax, jax.grad(jaxloss.gan_generator)(f)

    minimax, non_saturating = jax.tree.map(np.asarray, run(confident_fake))
    assert abs(float(minimax[0])) < 1e-5
    assert float(non_saturating[0]) == pytest.approx(-1.0, abs=1e-5)


TWO_SIDED = [jaxloss.gan_discriminator, jaxloss.wasserstein_critic, jaxloss.hinge_discriminator]


@functools.cache
def _two_sided_at_extremes():
    @jax.jit
    def run(real, fake):
        return [compiled.value_and_grads(fn, real, fake) for fn in TWO_SIDED]

    real, fake = np.meshgrid(EXTREME, EXTREME)
    return jax.tree.map(np.asarray, run(real.ravel(), fake.ravel()))


@pytest.mark.parametrize("fn", TWO_SIDED, ids=lambda f: f.__name__)
def test_two_sided_gan_losses_are_finite_at_extreme_scores(fn):
    value, grads = _two_sided_at_extremes()[TWO_SIDED.index(fn)]
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads)


GENERATORS = [
    jaxloss.gan_generator,
    lambda f: jaxloss.gan_generator(f, saturating=True),
    jaxloss.wasserstein_generator,
    jaxloss.hinge_generator,
]


@functools.cache
def _generators_at_extremes():
    run = jax.jit(lambda scores: [jax.value_and_grad(fn)(scores) for fn in GENERATORS])
    return jax.tree.map(np.asarray, run(EXTREME))


@pytest.mark.parametrize(
    "fn", GENERATORS, ids=["non_saturating", "saturating", "wasserstein", "hinge"]
)
def test_generator_losses_are_finite_at_extreme_scores(fn):
    value, grad = _generators_at_extremes()[GENERATORS.index(fn)]
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_hinge_discriminator_hand_computed():
    real, fake = np.array([0.5, 2.0, -1.0]), np.array([-2.0, 0.0, 1.0])
    # real: 0.5, 0, 2; fake: 0, 1, 2.
    ours = jax.jit(functools.partial(jaxloss.hinge_discriminator, reduction="none"))
    np.testing.assert_allclose(ours(real, fake), [0.5, 1.0, 4.0])


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

    @jax.jit  # ε, the penalty and its gradients, compiled together
    def run(w, v):
        key = jax.random.key(3)

        def penalty(w, v):
            return jaxloss.gradient_penalty(critic.jax(w, v), real, fake, key)

        epsilon = jax.random.uniform(key, (6, 1, 1, 1))
        return epsilon, jax.value_and_grad(penalty, argnums=(0, 1))(w, v)

    epsilon, (value, (dw, dv)) = run(critic.w.astype(np.float32), critic.v.astype(np.float32))
    expected, expected_dw, expected_dv = critic.torch_penalty(real, fake, np.asarray(epsilon))
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    np.testing.assert_allclose(dw, expected_dw, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dv, expected_dv, rtol=1e-4, atol=1e-6)
    with jax.enable_x64(True):
        # Compiled: check_grads calls the function and its VJP several times.
        check_grads(
            jax.jit(
                lambda w, v: jaxloss.gradient_penalty(
                    critic.jax(w, v),
                    real.astype(np.float64),
                    fake.astype(np.float64),
                    jax.random.key(3),
                )
            ),
            (critic.w, critic.v),
            order=1,
            modes=("rev",),
        )


def test_gradient_penalty_interpolates_between_real_and_fake():
    # With D(x) = ½‖x‖², ∇D(x̂) = x̂ and ‖x̂‖ = ε‖real‖ when fake = 0: ε is recovered.
    real = np.tile(np.array([[3.0, 4.0]], np.float32), (64, 1))
    fake = np.zeros_like(real)

    @jax.jit
    def run(real, fake):
        key = jax.random.key(0)
        penalties = jaxloss.gradient_penalty(
            lambda x: 0.5 * jnp.sum(x**2, axis=1), real, fake, key, target=0.0, reduction="none"
        )
        return penalties, jax.random.uniform(key, (64, 1))

    penalties, drawn = run(real, fake)
    epsilon = np.sqrt(np.asarray(penalties)) / 5
    np.testing.assert_allclose(epsilon, np.asarray(drawn)[:, 0], 1e-5)
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

    value, grad = jax.jit(jax.value_and_grad(penalty))(np.float32(2.0))
    assert float(value) == 1.0 and np.isfinite(grad)


def test_gradient_penalty_where_masks_examples():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    critic = _TorchCritic(3, seed=4)
    keep = np.array([True, False, True, True, False, True])

    @jax.jit  # every value and gradient the test reads, compiled together
    def run(real, fake, keep):
        key = jax.random.key(5)
        d = critic.jax(critic.w, critic.v)
        per_example = jaxloss.gradient_penalty(d, real, fake, key, reduction="none")
        masked = jaxloss.gradient_penalty(d, real, fake, key, where=keep)
        grads = jax.grad(lambda r: jaxloss.gradient_penalty(d, r, fake, key, where=keep))(real)
        return per_example, masked, jax.random.uniform(key, (6, 1)), grads

    # float32, as the loss would take the float64 inputs; the reference reads the float64 ones.
    per_example, masked, epsilon, grads = run(
        real.astype(np.float32), fake.astype(np.float32), keep
    )
    np.testing.assert_allclose(masked, np.asarray(per_example)[keep].mean(), rtol=1e-6)
    np.testing.assert_allclose(
        per_example,
        ref.gradient_penalty(critic.w, critic.v, real, fake, np.asarray(epsilon)),
        rtol=1e-5,
    )
    assert np.all(np.asarray(grads)[~keep] == 0) and np.any(np.asarray(grads)[keep] != 0)


def test_masked_rows_never_reach_the_critic_at_zero():
    # D(x) = p‖x‖: its gradient norm is p everywhere but undefined at x = 0, where the
    # masking door put the masked rows (NaN in the parameter's gradient, with a finite
    # value). Each kept row's penalty is (p − k)², its derivative 2(p − k), whatever ε.
    real = np.array([[1.0, 2.0], [3.0, 4.0], [0.5, -1.0]], np.float32)
    fake = np.array([[0.0, 1.0], [2.0, 2.0], [1.0, 1.0]], np.float32)
    keep = np.array([True, False, True])

    @jax.jit
    def run(p):
        def penalty(p, keep):
            def critic(x):
                return p * jnp.linalg.norm(x, axis=1)

            return jaxloss.gradient_penalty(critic, real, fake, jax.random.key(0), where=keep)

        # An empty batch with a mask: no kept row to borrow, and nothing to count.
        empty = jaxloss.gradient_penalty(
            lambda x: x.sum(axis=-1), real[:0], fake[:0], jax.random.key(0), where=keep[:0]
        )
        # Every row masked (a device's shard all padding): no kept row either; the critic
        # ran at the zeroed rows, a NaN gradient with the value 0.
        none_kept = jax.value_and_grad(penalty)(p, np.zeros(3, bool))
        return jax.value_and_grad(penalty)(p, keep), empty, none_kept

    (value, grad), empty, none_kept = run(np.float32(2.0))
    np.testing.assert_allclose(value, 1.0, rtol=1e-5)
    np.testing.assert_allclose(grad, 2.0, rtol=1e-5)
    assert float(empty) == 0.0
    assert [float(x) for x in none_kept] == [0.0, 0.0]


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

    @jax.jit
    def run(reconstruction, mean, log_var):
        ours = jaxloss.elbo_loss(reconstruction, mean, log_var, beta=4.0, reduction="none")
        return ours, jaxloss.gaussian_kl(mean, log_var, reduction="none")

    ours, kl = (np.asarray(x) for x in run(reconstruction, mean, log_var))
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

    value, grad = jax.jit(jax.value_and_grad(loss))(mean)
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
    masked = jax.jit(functools.partial(jaxloss.elbo_loss, free_bits=0.6))(
        reconstruction, mean, log_var, where=keep
    )
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
