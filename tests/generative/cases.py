"""The generative losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import EMBEDDING_DIM, FEATURES, pair, scores_pair
from tests.generative import reference as ref


def _scores_one(rng: np.random.Generator, batch: int) -> tuple:
    return scores_pair(rng, batch)[:1]


def _score_case(fn, reference, make_inputs, **kwargs) -> Case:
    differentiable = tuple(range(len(make_inputs(np.random.default_rng(0), 1))))
    return Case(fn, make_inputs, reference, kwargs=kwargs, differentiable=differentiable)


_CRITIC_W = np.random.default_rng(123).normal(size=(FEATURES, 4)).astype(np.float32)
_CRITIC_V = np.random.default_rng(321).normal(size=4).astype(np.float32)
PENALTY_KEY = 7


def _critic(x):
    return jnp.tanh(x @ _CRITIC_W.astype(x.dtype)) @ _CRITIC_V.astype(x.dtype)


def _gradient_penalty(real, fake, **options):
    return jaxloss.gradient_penalty(_critic, real, fake, jax.random.key(PENALTY_KEY), **options)


def _gradient_penalty_reference(real, fake, target=1.0):
    epsilon = np.asarray(jax.random.uniform(jax.random.key(PENALTY_KEY), (len(real), 1)))
    return ref.gradient_penalty(_CRITIC_W, _CRITIC_V, real, fake, epsilon, target)


def _vae_outputs(rng: np.random.Generator, batch: int) -> tuple:
    reconstruction = rng.uniform(1, 3, size=batch).astype(np.float32)
    mean = rng.normal(size=(batch, EMBEDDING_DIM)).astype(np.float32)
    return reconstruction, mean, (0.5 * rng.normal(size=(batch, EMBEDDING_DIM))).astype(np.float32)


CASES: dict[str, Case] = {
    "gan_discriminator": dataclasses.replace(
        _score_case(jaxloss.gan_discriminator, ref.gan_discriminator, scores_pair), free=(0, 1)
    ),
    "gan_generator": dataclasses.replace(
        _score_case(jaxloss.gan_generator, ref.gan_generator, _scores_one), free=(0,)
    ),
    # Signed: the minimax log(1 - σ(l)) is <= 0.
    "gan_generator[saturating]": dataclasses.replace(
        _score_case(jaxloss.gan_generator, ref.gan_generator, _scores_one, saturating=True),
        free=(0,),
        signed=True,
    ),
    "wasserstein_critic": dataclasses.replace(
        _score_case(jaxloss.wasserstein_critic, ref.wasserstein_critic, scores_pair),
        free=(0, 1),
        signed=True,
    ),
    "wasserstein_generator": dataclasses.replace(
        _score_case(jaxloss.wasserstein_generator, ref.wasserstein_generator, _scores_one),
        free=(0,),
        signed=True,
    ),
    "hinge_discriminator": dataclasses.replace(
        _score_case(jaxloss.hinge_discriminator, ref.hinge_discriminator, scores_pair), free=(0, 1)
    ),
    "hinge_generator": dataclasses.replace(
        _score_case(jaxloss.hinge_generator, ref.wasserstein_generator, _scores_one),
        free=(0,),
        signed=True,
    ),
    "gradient_penalty": Case(
        _gradient_penalty,
        pair,
        _gradient_penalty_reference,
        kwargs={"target": 1.0},
        differentiable=(0, 1),
        hyperparameters={"target": 0.5},
        invalid={"target": -1.0},
        rows_independent=False,
        free=(0, 1),
    ),
    # Signed: the caller's reconstruction term has any sign.
    "elbo_loss": Case(
        jaxloss.elbo_loss,
        _vae_outputs,
        ref.elbo_loss,
        kwargs={"beta": 2.0},
        differentiable=(0, 1, 2),
        hyperparameters={"beta": 0.5},
        invalid={"beta": -1.0, "free_bits": -0.5},
        free=(0, 1),
        signed=True,
    ),
    # Signed: the caller's reconstruction term has any sign.
    "elbo_loss[free_bits]": Case(
        jaxloss.elbo_loss,
        _vae_outputs,
        ref.elbo_loss,
        # 0.5 binds 2 of the 4 dimensions of the shared suites' inputs, 3 under their mask.
        kwargs={"free_bits": 0.5},
        differentiable=(0, 1, 2),
        hyperparameters={"free_bits": 0.2},
        free=(0, 1),
        signed=True,
    ),
}
