"""A variational autoencoder on 8x8 handwritten digits, trained with ``jaxloss.elbo_loss``.

What it shows: the VAE's loss as jaxloss splits it. The reconstruction term is the caller's
(here the decoder's Bernoulli negative log-likelihood, ``binary_cross_entropy_with_logits``
summed over the 64 pixels of each image); ``elbo_loss`` adds the KL of the encoder's
Gaussian from the standard normal prior, with a β weight (β-VAE) and optional free bits. A
model like this compresses a digit cut out of a form or a video frame into a handful of
numbers and can draw new, plausible digits from the prior: a generative model and a
learned code in one, where each nat of KL is a nat of information the code carries.

The data are scikit-learn's 8x8 digits (1,797 images, shipped with scikit-learn), split
80/20 into training and held-out images, with each pixel made black or white (grey level
above or below one half): then the decoder's Bernoulli is a true likelihood and the negative
ELBO an upper bound on the image's negative log-likelihood, in nats. Encoder and decoder are
plain-JAX MLPs with two hidden layers of 64 (``_common.mlp_init``); the encoder gives the
mean and log-variance of the latent code, a sample is drawn with the reparameterization
trick, and the decoder gives one logit per pixel. Four settings are trained from the same
seed:

- a 2-D latent code with β = 1 (small enough to plot: ``vae_digits_latent.png``);
- an 8-D code with β = 1, the plain VAE;
- an 8-D code with β = 4, which pays four times for every nat of KL and so keeps less
  information in the code;
- the same β = 4 with free bits of 0.5 nats per latent dimension: every dimension is
  charged at least 0.5 nats (its KL averaged over the batch) whether it is used or not, so
  the encoder gains nothing by switching a dimension off and can keep that much in each.

On the held-out images the script reports the negative ELBO (always with β = 1, the true
bound whatever β was trained with), its reconstruction and KL terms in nats per image, and
the number of active latent dimensions (Burda et al. 2016: the variance over images of the
encoder mean is above 0.01). The reference is a model without a code: each pixel an
independent Bernoulli with its frequency in the training images. The script fails if the
8-D β = 1 model does not beat that reference by 2 nats per image. ``vae_digits.png`` shows
held-out digits, their reconstructions and samples from the prior for each setting.

Run it from the repository root::

    .venv/bin/python examples/vae_digits.py --quick   # 600 steps per setting, seconds
    .venv/bin/python examples/vae_digits.py           # 4,000 steps per setting
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from _common import (
    Params,
    batches,
    digits,
    fit,
    markdown_table,
    mlp_apply,
    mlp_init,
    parse_args,
    report,
    save_figure,
)
from sklearn.model_selection import train_test_split

import jaxloss

HIDDEN = 64  # wider networks overfit the 1,437 training images
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
EVAL_SAMPLES = 32  # latent draws per held-out image when estimating the ELBO
ACTIVE_THRESHOLD = 0.01  # Burda et al.'s activity threshold on Var_x(E[z|x])
SHOWN = 10  # digits per row in the figure
MARGIN = 2.0  # nats per image the 8-D VAE must gain over the model without a code


class Setting(NamedTuple):
    """One VAE configuration: its label, latent size and loss hyperparameters."""

    label: str
    latent_dim: int
    beta: float
    free_bits: float


SETTINGS = (
    Setting("2-D code, β=1", 2, 1.0, 0.0),
    Setting("8-D code, β=1", 8, 1.0, 0.0),
    Setting("8-D code, β=4", 8, 4.0, 0.0),
    Setting("8-D code, β=4, free bits 0.5", 8, 4.0, 0.5),
)


def init_vae(key: jax.Array, latent_dim: int) -> dict[str, Params]:
    """The encoder (64 pixels → mean and log-variance) and decoder (code → 64 logits)."""
    encoder_key, decoder_key = jax.random.split(key)
    return {
        "encoder": mlp_init(encoder_key, [64, HIDDEN, HIDDEN, 2 * latent_dim]),
        "decoder": mlp_init(decoder_key, [latent_dim, HIDDEN, HIDDEN, 64]),
    }


def encode(params: dict[str, Params], images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``images [batch, 64]`` → the posterior's ``(mean, log_var)``, each ``[batch, latent]``."""
    mean, log_var = jnp.split(mlp_apply(params["encoder"], images), 2, axis=-1)
    return mean, log_var


def reconstruction_nll(params: dict[str, Params], code: jax.Array, images: jax.Array):
    """The decoder's Bernoulli negative log-likelihood of each image, ``[batch]`` nats."""
    logits = mlp_apply(params["decoder"], code)
    per_pixel = jaxloss.binary_cross_entropy_with_logits(logits, images, reduction="none")
    return per_pixel.sum(axis=-1)


def sample_code(key: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """The reparameterization trick: ``μ + σ ε`` with ``ε ~ N(0, I)``."""
    return mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)


def make_loss(setting: Setting):
    """The training loss of ``setting``: ``(params, images, key) -> scalar``."""

    def loss_fn(params, images, key):
        mean, log_var = encode(params, images)
        code = sample_code(key, mean, log_var)
        return jaxloss.elbo_loss(
            reconstruction_nll(params, code, images),
            mean,
            log_var,
            beta=setting.beta,
            free_bits=setting.free_bits,
        )

    return loss_fn


@jax.jit
def evaluate(params: dict[str, Params], images: jax.Array, key: jax.Array):
    """Held-out negative ELBO (β = 1), its terms, and the per-dimension variance of the mean.

    The reconstruction term is averaged over ``EVAL_SAMPLES`` latent draws per image.

    Returns:
      ``(neg_elbo, reconstruction, kl, mean_variance [latent_dim])``, the first three in nats
      per image.
    """
    mean, log_var = encode(params, images)
    keys = jax.random.split(key, EVAL_SAMPLES)
    codes = jax.vmap(sample_code, in_axes=(0, None, None))(keys, mean, log_var)
    reconstruction = jax.vmap(reconstruction_nll, in_axes=(None, 0, None))(params, codes, images)
    reconstruction = reconstruction.mean(axis=0)
    neg_elbo = jaxloss.elbo_loss(reconstruction, mean, log_var)
    kl = jaxloss.gaussian_kl(mean, log_var)
    return neg_elbo, reconstruction.mean(), kl, mean.var(axis=0)


def digit_row(images: np.ndarray) -> np.ndarray:
    """``[n, 64]`` images → one ``[8, 9n − 1]`` strip, a blank column between digits."""
    tiles = [
        np.pad(image.reshape(8, 8), ((0, 0), (0, 1)), constant_values=np.nan) for image in images
    ]
    return np.concatenate(tiles, axis=1)[:, :-1]


def main() -> None:
    """Trains every setting, reports held-out ELBO terms and draws the figures."""
    args = parse_args(__doc__)
    started = time.perf_counter()
    steps = 600 if args.quick else 4000

    images, labels = digits(standardize=False)
    # Black-and-white pixels make the decoder's Bernoulli a true likelihood, the ELBO a bound.
    images = (images > 0.5).astype(np.float32)
    train_x, test_x, _, test_y = train_test_split(
        images, labels, test_size=0.2, random_state=args.seed, stratify=labels
    )
    test_x = jnp.asarray(test_x)

    # The reference without a code: independent pixels at their training frequencies.
    pixel_means = np.clip(train_x.mean(axis=0), 1e-3, 1 - 1e-3)
    baseline_logits = jnp.broadcast_to(jnp.log(pixel_means / (1 - pixel_means)), test_x.shape)
    baseline = float(
        jaxloss.binary_cross_entropy_with_logits(baseline_logits, test_x, reduction="sum")
    ) / len(test_x)

    key = jax.random.key(args.seed)
    init_key, train_key, eval_key, prior_key = jax.random.split(key, 4)
    rows, results = [], {}
    for setting in SETTINGS:
        rng = np.random.default_rng(args.seed)
        step_keys = jax.random.split(train_key, steps)
        data = (
            (train_x[index], step_key)
            for index, step_key in zip(
                batches(rng, len(train_x), BATCH_SIZE, steps), step_keys, strict=True
            )
        )
        params, _ = fit(
            make_loss(setting),
            init_vae(init_key, setting.latent_dim),
            data,
            optax.adam(LEARNING_RATE),
            steps,
            desc=setting.label,
        )
        neg_elbo, reconstruction, kl, mean_variance = evaluate(params, test_x, eval_key)
        active = int(jnp.sum(mean_variance > ACTIVE_THRESHOLD))
        rows.append(
            [
                setting.label,
                float(neg_elbo),
                float(reconstruction),
                float(kl),
                f"{active} / {setting.latent_dim}",
            ]
        )
        results[setting] = params, float(neg_elbo)
    rows.append(["no code (pixel means)", baseline, baseline, 0.0, "-"])

    report(
        args.out,
        "vae_digits",
        f"VAE on held-out 8x8 digits ({len(test_x)} images, {steps} training steps per "
        "setting): negative ELBO (β = 1) = reconstruction + KL, in nats per image (lower is "
        "better).",
        markdown_table(
            ["setting", "−ELBO", "reconstruction", "KL", "active dims"],
            rows,
        ),
        started,
        notes=(
            f"Active dims: latent dimensions whose encoder mean varies over the held-out "
            f"images (variance > {ACTIVE_THRESHOLD})."
        ),
    )
    draw_reconstructions(results, np.asarray(test_x), prior_key, args.out)
    draw_latent(results[SETTINGS[0]][0], test_x, test_y, args.out)

    plain = results[SETTINGS[1]][1]
    if not plain < baseline - MARGIN:
        raise SystemExit(
            f"the 8-D VAE's held-out −ELBO {plain:.2f} does not beat the no-code model's "
            f"{baseline:.2f} nats by {MARGIN} nats"
        )


def draw_reconstructions(results, test_x: np.ndarray, key: jax.Array, out: str) -> None:
    """``vae_digits.png``: held-out digits, their reconstructions, and prior samples."""
    shown = test_x[:SHOWN]
    strips, names = [digit_row(shown)], ["held-out digits"]
    for setting, (params, _) in results.items():
        mean, _ = encode(params, jnp.asarray(shown))
        strips.append(digit_row(np.asarray(jax.nn.sigmoid(mlp_apply(params["decoder"], mean)))))
        names.append(f"reconstructed\n{setting.label}")
    for setting, (params, _) in results.items():
        code = jax.random.normal(key, (SHOWN, setting.latent_dim))
        strips.append(digit_row(np.asarray(jax.nn.sigmoid(mlp_apply(params["decoder"], code)))))
        names.append(f"from the prior\n{setting.label}")

    fig, axes = plt.subplots(len(strips), 1, figsize=(8, 0.8 * len(strips)), layout="constrained")
    for ax, strip, name in zip(axes, strips, names, strict=True):
        ax.imshow(strip, cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(
        "VAE on 8x8 digits: reconstructions (decoder mean at the posterior mean)\n"
        "and samples from the prior N(0, I) (decoder mean)",
        fontsize=10,
    )
    save_figure(fig, out, "vae_digits")


def draw_latent(params: dict[str, Params], test_x: jax.Array, test_y, out: str) -> None:
    """``vae_digits_latent.png``: the 2-D code's posterior means of the held-out digits."""
    mean, _ = encode(params, test_x)
    mean = np.asarray(mean)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    colors = plt.get_cmap("tab10")
    for digit in range(10):
        chosen = test_y == digit
        ax.scatter(*mean[chosen].T, s=12, color=colors(digit), label=str(digit))
    ax.set_xlabel("latent dimension 1 (posterior mean)")
    ax.set_ylabel("latent dimension 2 (posterior mean)")
    ax.set_title("2-D VAE code of the held-out digits, colored by label")
    ax.legend(title="digit", loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    save_figure(fig, out, "vae_digits_latent")


if __name__ == "__main__":
    main()
