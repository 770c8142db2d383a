"""GAN losses against torch (the gradient penalty: autograd with ``create_graph``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from _harness import Case, normal

import jaxloss

ORDER = 8


def cases(quick: bool, rng) -> list[Case]:
    n = 1 << 14 if quick else 1 << 20
    real, fake = normal(rng, n), normal(rng, n)

    def torch_gan(torch):
        bce = torch.nn.functional.binary_cross_entropy_with_logits

        def loss(r, f):
            return bce(r, torch.ones_like(r)) + bce(f, torch.zeros_like(f))

        return loss

    b, d, hidden = (128, 16, 64) if quick else (1024, 64, 256)
    w1, w2 = normal(rng, d, hidden, scale=d**-0.5), normal(rng, hidden, 1, scale=hidden**-0.5)
    x_real, x_fake = normal(rng, b, d), normal(rng, b, d)
    key = jax.random.key(0)

    def ours_gp(w1, w2, real, fake):
        def critic(x):
            return (jnp.tanh(x @ w1) @ w2)[:, 0]

        return jaxloss.gradient_penalty(critic, real, fake, key)

    def torch_gp(torch):
        def loss(w1, w2, real, fake):
            eps = torch.rand(real.shape[0], 1, device=real.device)
            mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
            scores = (torch.tanh(mixed @ w1) @ w2)[:, 0]
            (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
            return ((grad.norm(dim=1) - 1) ** 2).mean()

        return loss

    return [
        Case(
            "generative",
            f"gan_discriminator, N={n}",
            [real, fake],
            (0, 1),
            {"jaxloss": jaxloss.gan_discriminator},
            {"torch (BCE with logits)": torch_gan},
        ),
        Case(
            "generative",
            f"gradient_penalty, critic {d}-{hidden}-1, B={b} (gradient in the weights)",
            [w1, w2, x_real, x_fake],
            (0, 1),
            {"jaxloss": ours_gp},
            {"torch (autograd.grad, create_graph)": torch_gp},
            rtol=None,
            note="each side draws its own ε, so the values differ",
        ),
    ]
