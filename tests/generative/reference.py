"""Float64 NumPy references of the generative losses, from the papers' and torch's formulas.

Each returns the per-example (``reduction="none"``) values; see ``tests/_suite/numpy_reference.py``.
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import f64 as _f64
from tests._suite.numpy_reference import log_sigmoid as _log_sigmoid


def gan_discriminator(real_logits, fake_logits):
    """−log σ(D(x)) − log(1 − σ(D(G(z)))) (Goodfellow et al. 2014)."""
    real, fake = _f64(real_logits, fake_logits)
    return -_log_sigmoid(real) - _log_sigmoid(-fake)


def gan_generator(fake_logits, saturating=False):
    (fake,) = _f64(fake_logits)
    return _log_sigmoid(-fake) if saturating else -_log_sigmoid(fake)


def wasserstein_critic(real_scores, fake_scores):
    real, fake = _f64(real_scores, fake_scores)
    return fake - real


def wasserstein_generator(fake_scores):
    return -np.asarray(fake_scores, np.float64)


def hinge_discriminator(real_scores, fake_scores):
    real, fake = _f64(real_scores, fake_scores)
    return np.maximum(0, 1 - real) + np.maximum(0, 1 + fake)


def elbo_loss(reconstruction, mean, log_var, beta=1.0, free_bits=0.0, where=None):
    """r + β Σ_j KL_j; free bits: dimension j costs max(λ, batch-mean KL_j) (Kingma 2016)."""
    r, mu, lv = _f64(reconstruction, mean, log_var)
    kl = -0.5 * (1 + lv - mu**2 - np.exp(lv))
    if free_bits:
        keep = np.ones(len(r), bool) if where is None else np.asarray(where)
        batch_mean = kl[keep].mean(axis=0) if keep.any() else np.zeros(kl.shape[1])
        kl = np.where(batch_mean >= free_bits, kl, free_bits)
    return r + beta * kl.sum(axis=1)


def gradient_penalty(critic_w, critic_v, real, fake, epsilon, target=1.0):
    """WGAN-GP (Gulrajani et al. 2017) for D(x) = Σ_k v_k tanh((x W)_k), gradient by hand."""
    w, v, real, fake, epsilon = _f64(critic_w, critic_v, real, fake, epsilon)
    x_hat = epsilon * real + (1 - epsilon) * fake
    gradient = (v * (1 - np.tanh(x_hat @ w) ** 2)) @ w.T
    return (np.sqrt((gradient**2).sum(axis=1)) - target) ** 2
