"""Four GAN objectives on the 8-Gaussians ring: which ones find every mode?

What it shows: jaxloss's GAN losses for both players, used in a hand-written adversarial
training loop: two optax optimizers, alternating discriminator and generator updates, 250
steps at a time in one ``jax.jit``-compiled ``lax.scan``. The data are the classic toy of
the mode-collapse literature: a mixture of 8 Gaussians with means evenly spaced on a circle
of radius 2, each with a standard deviation of 0.05. A generator that draws from only some
of the modes can still fool its discriminator locally. That failure, mode collapse, is what
the objective has to prevent; on real data it is the face synthesizer that draws one kind of
face, or the generator meant to enlarge a small set of tumor scans that draws one kind of
tumor.

The same generator (16-D Gaussian noise in) and discriminator (MLPs with two hidden layers
of 64; ``_common.mlp_init``), the same optimizer (Adam with learning rate 1e-3 and the
β1 = 0, β2 = 0.9 of Gulrajani et al. 2017) and the same number of generator steps are used
with four objectives:

- minimax: ``gan_discriminator`` and ``gan_generator(saturating=True)``, the game as
  Goodfellow et al. wrote it, whose generator gradient vanishes when the discriminator is
  sure;
- non-saturating: the same discriminator and ``gan_generator(saturating=False)``, the
  variant Goodfellow et al. recommend;
- WGAN-GP: ``wasserstein_critic`` plus 10 × ``gradient_penalty``, five critic steps per
  generator step (so five times the discriminator updates of the others), and
  ``wasserstein_generator``, as in Gulrajani et al. 2017;
- hinge: ``hinge_discriminator`` and ``hinge_generator``.

On 2,000 generated points per run the script counts a point as high quality if it lies
within 3 standard deviations of a mode, and a mode as covered if at least 1% of the points
(20) are high-quality points near it. It also gives the KL divergence of the histogram of
nearest modes from the uniform one (``jaxloss.kl_div``): 0 when the eight modes get equal
shares, log 8 ≈ 2.08 when every point goes to one mode; it measures balance, not quality.
Quality and balance together are in an earth mover's distance: the exact W1 distance between
1,000 generated and 1,000 real points (an optimal matching, ``scipy``), next to that of two
independent real samples, the floor of that estimate. GANs are fickle, so every objective
is trained from several seeds (side by side, ``jax.vmap``), and the table gives the mean ±
standard deviation and each seed's value; what wins is whatever the run measures. The only
check (full run) is that at least one objective covers half the modes, which catches a
broken training loop, not a bad objective.

``gan_mixture.png`` draws each run's samples (a row per seed, a column per objective) over
the true modes.

Run it from the repository root::

    .venv/bin/python examples/gan_mixture.py --quick   # one seed, 1,000 steps
    .venv/bin/python examples/gan_mixture.py           # three seeds, 6,000 steps
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from _common import Params, markdown_table, mlp_apply, mlp_init, parse_args, report, save_figure
from scipy.optimize import linear_sum_assignment
from tqdm.auto import tqdm

import jaxloss

NUM_MODES = 8
RADIUS = 2.0
STD = 0.05
NOISE_DIM = 16
HIDDEN = 64
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
GP_WEIGHT = 10.0  # λ of Gulrajani et al.
CHUNK = 250  # generator steps per compiled call (and per progress-bar update)
NUM_SAMPLES = 2000
COVERED = 0.01  # share of the samples a mode needs to count as covered
EARTH_MOVER_SAMPLES = 1000  # points per side of the exact matching (O(n³))

MODES = RADIUS * np.stack(
    [
        np.cos(2 * np.pi * np.arange(NUM_MODES) / NUM_MODES),
        np.sin(2 * np.pi * np.arange(NUM_MODES) / NUM_MODES),
    ],
    axis=-1,
).astype(np.float32)


class Objective(NamedTuple):
    """A GAN objective: both players' losses and the discriminator steps per generator step.

    ``discriminator_loss(discriminate, real, fake, key)`` and ``generator_loss(fake_scores)``;
    ``discriminate`` maps points ``[batch, 2]`` to scores ``[batch]``.
    """

    name: str
    discriminator_loss: Callable[..., jax.Array]
    generator_loss: Callable[[jax.Array], jax.Array]
    discriminator_steps: int


def logistic_discriminator(discriminate, real, fake, key):
    """The original GAN's discriminator loss (``key`` unused)."""
    return jaxloss.gan_discriminator(discriminate(real), discriminate(fake))


def wgan_gp_critic(discriminate, real, fake, key):
    """WGAN-GP's critic loss: the Wasserstein estimate plus λ × the gradient penalty."""
    penalty = jaxloss.gradient_penalty(discriminate, real, fake, key)
    return jaxloss.wasserstein_critic(discriminate(real), discriminate(fake)) + GP_WEIGHT * penalty


def hinge_discriminator(discriminate, real, fake, key):
    """The hinge GAN's discriminator loss (``key`` unused)."""
    return jaxloss.hinge_discriminator(discriminate(real), discriminate(fake))


OBJECTIVES = (
    Objective(
        "minimax",
        logistic_discriminator,
        functools.partial(jaxloss.gan_generator, saturating=True),
        1,
    ),
    Objective(
        "non-saturating",
        logistic_discriminator,
        functools.partial(jaxloss.gan_generator, saturating=False),
        1,
    ),
    Objective("WGAN-GP", wgan_gp_critic, jaxloss.wasserstein_generator, 5),
    Objective("hinge", hinge_discriminator, jaxloss.hinge_generator, 1),
)


def sample_real(key: jax.Array, n: int) -> jax.Array:
    """``n`` points ``[n, 2]`` from the mixture: a uniform mode plus N(0, STD²) noise."""
    mode_key, noise_key = jax.random.split(key)
    modes = jax.random.randint(mode_key, (n,), 0, NUM_MODES)
    return jnp.asarray(MODES)[modes] + STD * jax.random.normal(noise_key, (n, 2))


def generate(generator: Params, key: jax.Array, n: int) -> jax.Array:
    """``n`` generated points ``[n, 2]`` from Gaussian noise."""
    return mlp_apply(generator, jax.random.normal(key, (n, NOISE_DIM)))


def scores(discriminator: Params, points: jax.Array) -> jax.Array:
    """The discriminator's logit (or critic's score) of each point, ``[batch]``."""
    return mlp_apply(discriminator, points)[..., 0]


class State(NamedTuple):
    """Both players' parameters and optimizer states."""

    generator: Params
    discriminator: Params
    generator_opt: optax.OptState
    discriminator_opt: optax.OptState


OPTIMIZER = optax.adam(LEARNING_RATE, b1=0.0, b2=0.9)


def train_chunk(state: State, key: jax.Array, objective: Objective):
    """``CHUNK`` generator steps, each after ``objective.discriminator_steps`` critic steps.

    Returns:
      The new state and the last step's ``(discriminator_loss, generator_loss)``.
    """

    def discriminator_step(carry, key):
        discriminator, opt_state, generator = carry
        real_key, fake_key, penalty_key = jax.random.split(key, 3)
        real = sample_real(real_key, BATCH_SIZE)
        fake = generate(generator, fake_key, BATCH_SIZE)  # constants to the discriminator

        def loss_fn(discriminator):
            return objective.discriminator_loss(
                functools.partial(scores, discriminator), real, fake, penalty_key
            )

        loss, grads = jax.value_and_grad(loss_fn)(discriminator)
        updates, opt_state = OPTIMIZER.update(grads, opt_state, discriminator)
        return (optax.apply_updates(discriminator, updates), opt_state, generator), loss

    def step(state, key):
        critic_key, fake_key = jax.random.split(key)
        critic_keys = jax.random.split(critic_key, objective.discriminator_steps)
        (discriminator, discriminator_opt, _), discriminator_losses = jax.lax.scan(
            discriminator_step,
            (state.discriminator, state.discriminator_opt, state.generator),
            critic_keys,
        )

        def generator_loss(generator):
            fake = generate(generator, fake_key, BATCH_SIZE)
            return objective.generator_loss(scores(discriminator, fake))

        loss, grads = jax.value_and_grad(generator_loss)(state.generator)
        updates, generator_opt = OPTIMIZER.update(grads, state.generator_opt, state.generator)
        generator = optax.apply_updates(state.generator, updates)
        new_state = State(generator, discriminator, generator_opt, discriminator_opt)
        return new_state, (discriminator_losses[-1], loss)

    state, losses = jax.lax.scan(step, state, jax.random.split(key, CHUNK))
    return state, jax.tree.map(lambda x: x[-1], losses)


def init_state(key: jax.Array) -> State:
    """A fresh generator and discriminator and their optimizer states."""
    generator_key, discriminator_key = jax.random.split(key)
    generator = mlp_init(generator_key, [NOISE_DIM, HIDDEN, HIDDEN, 2])
    discriminator = mlp_init(discriminator_key, [2, HIDDEN, HIDDEN, 1])
    return State(generator, discriminator, OPTIMIZER.init(generator), OPTIMIZER.init(discriminator))


@functools.partial(jax.jit, static_argnames="objective")
def train_chunk_per_seed(states: State, keys: jax.Array, objective: Objective):
    """:func:`train_chunk` for every seed at once: the state and keys have a seed axis."""
    return jax.vmap(functools.partial(train_chunk, objective=objective))(states, keys)


def train(objective: Objective, seeds: list[int], steps: int) -> list[Params]:
    """Trains one generator and discriminator per seed (side by side, ``vmap``).

    Returns:
      The trained generators' parameters, one per seed.
    """
    init_keys, train_keys = zip(*(jax.random.split(jax.random.key(s)) for s in seeds), strict=True)
    states = jax.vmap(init_state)(jnp.stack(init_keys))
    chunk_keys = jax.vmap(lambda key: jax.random.split(key, steps // CHUNK))(jnp.stack(train_keys))
    bar = tqdm(total=steps, desc=objective.name, leave=False)
    for chunk in range(steps // CHUNK):
        states, losses = train_chunk_per_seed(states, chunk_keys[:, chunk], objective)
        discriminator_loss, generator_loss = np.asarray(losses[0]), np.asarray(losses[1])
        if not np.all(np.isfinite(discriminator_loss + generator_loss)):
            raise FloatingPointError(f"{objective.name}: a loss became NaN or inf")
        bar.set_postfix(
            d_loss=f"{discriminator_loss.mean():.3f}", g_loss=f"{generator_loss.mean():.3f}"
        )
        bar.update(CHUNK)
    bar.close()
    return [jax.tree.map(lambda x, i=i: x[i], states.generator) for i in range(len(seeds))]


def mode_metrics(samples: np.ndarray) -> tuple[int, float, float]:
    """Modes covered, share of high-quality samples, and KL(nearest-mode histogram ‖ uniform).

    Args:
      samples: ``[n, 2]`` generated points.

    Returns:
      ``(modes_covered, high_quality_share, mode_kl)``.
    """
    distances = np.linalg.norm(samples[:, None, :] - MODES[None, :, :], axis=-1)
    nearest = distances.argmin(axis=1)
    high_quality = distances.min(axis=1) < 3 * STD
    counts = np.bincount(nearest[high_quality], minlength=NUM_MODES)
    covered = int(np.sum(counts >= COVERED * len(samples)))
    histogram = np.bincount(nearest, minlength=NUM_MODES) / len(samples)
    uniform = jnp.full((NUM_MODES,), -np.log(NUM_MODES))
    mode_kl = float(jaxloss.kl_div(uniform, jnp.asarray(histogram), reduction="sum"))
    return covered, float(high_quality.mean()), mode_kl


def earth_mover(points: np.ndarray, other: np.ndarray) -> float:
    """The exact W1 distance between two equal-size point sets (an optimal matching)."""
    cost = np.linalg.norm(points[:, None, :] - other[None, :, :], axis=-1)
    rows, columns = linear_sum_assignment(cost)
    return float(cost[rows, columns].mean())


def summary(values: list[float], fmt: str, each_fmt: str | None = None) -> str:
    """``mean ± std (each value)`` of the seeds, or the value alone for one seed."""
    each = ", ".join(format(v, each_fmt or fmt) for v in values)
    if len(values) == 1:
        return each
    return f"{np.mean(values):{fmt}} ± {np.std(values):{fmt}} ({each})"


def main() -> None:
    """Trains every objective from every seed, reports the mode metrics and draws the runs."""
    args = parse_args(__doc__)
    started = time.perf_counter()
    steps = 1000 if args.quick else 6000
    seeds = [args.seed] if args.quick else [args.seed + i for i in range(3)]
    real_key, reference_key = jax.random.split(jax.random.key(args.seed + 1_000_000))
    real = np.asarray(sample_real(real_key, EARTH_MOVER_SAMPLES))
    floor = earth_mover(np.asarray(sample_real(reference_key, EARTH_MOVER_SAMPLES)), real)

    samples, metrics = {}, {}
    for objective in OBJECTIVES:
        generators = train(objective, seeds, steps)
        for seed, generator in zip(seeds, generators, strict=True):
            points = np.asarray(generate(generator, jax.random.key(seed + 10_000), NUM_SAMPLES))
            samples[objective.name, seed] = points
            distance = earth_mover(points[:EARTH_MOVER_SAMPLES], real)
            metrics[objective.name, seed] = (*mode_metrics(points), distance)

    rows = []
    for objective in OBJECTIVES:
        covered, quality, mode_kl, distance = zip(
            *(metrics[objective.name, seed] for seed in seeds), strict=True
        )
        rows.append(
            [
                objective.name,
                summary(list(covered), ".1f", each_fmt="d"),
                summary([100 * q for q in quality], ".1f"),
                summary(list(mode_kl), ".3f"),
                summary(list(distance), ".3f"),
            ]
        )
    report(
        args.out,
        "gan_mixture",
        f"8-Gaussians ring (radius {RADIUS:g}, std {STD:g}), {steps} generator steps per run, "
        f"{NUM_SAMPLES} samples per run, "
        + (
            f"seed {seeds[0]}."
            if len(seeds) == 1
            else f"mean ± std over seeds {', '.join(map(str, seeds))} (each seed in brackets)."
        ),
        markdown_table(
            [
                "objective",
                "modes covered (of 8)",
                "high-quality samples (%)",
                "mode KL (nats)",
                "earth mover (W1)",
            ],
            rows,
        ),
        started,
        notes=(
            f"High quality: within 3 std ({3 * STD:g}) of a mode. Covered: at least "
            f"{COVERED:.0%} of the samples are high-quality ones near the mode. Mode KL: "
            "KL(histogram of nearest modes ‖ uniform), 0 when balanced, log 8 = 2.079 when "
            f"all samples go to one mode. Earth mover: exact W1 between {EARTH_MOVER_SAMPLES} "
            f"generated and {EARTH_MOVER_SAMPLES} real points; two independent real samples "
            f"give {floor:.3f}, the floor of this estimate."
        ),
    )
    draw(samples, metrics, seeds, args.out)

    best = max(metric[0] for metric in metrics.values())
    if not args.quick and best < NUM_MODES // 2:
        raise SystemExit(f"no objective covered {NUM_MODES // 2} of the modes (best: {best})")


def draw(samples, metrics, seeds, out: str) -> None:
    """``gan_mixture.png``: each run's samples over the true modes and their 3σ circles."""
    fig, axes = plt.subplots(
        len(seeds),
        len(OBJECTIVES),
        figsize=(3.2 * len(OBJECTIVES), 3.3 * len(seeds)),
        squeeze=False,
    )
    for row, seed in enumerate(seeds):
        for column, objective in enumerate(OBJECTIVES):
            ax = axes[row, column]
            points = samples[objective.name, seed]
            covered, quality, _, distance = metrics[objective.name, seed]
            ax.scatter(*points.T, s=2, alpha=0.4, color="tab:blue", label="generated")
            for mode in MODES:
                ax.add_patch(plt.Circle(mode, 3 * STD, fill=False, color="tab:red", lw=1))
            ax.scatter(*MODES.T, marker="x", s=20, color="tab:red", label="true modes (3σ)")
            ax.set_xlim(-3, 3)
            ax.set_ylim(-3, 3)
            ax.set_aspect("equal")
            ax.set_title(
                f"{objective.name}, seed {seed}\n{covered}/8 modes, "
                f"{100 * quality:.0f}% high quality, W1 {distance:.2f}",
                fontsize=9,
            )
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(loc="upper left", fontsize=7, markerscale=2)
    fig.suptitle("GAN samples (2,000 per run) on the 8-Gaussians ring", fontsize=11)
    fig.tight_layout()
    save_figure(fig, out, "gan_mixture")


if __name__ == "__main__":
    main()
