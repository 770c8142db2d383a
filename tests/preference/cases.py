"""The preference losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import dataclasses

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import scores_pair
from tests.preference import reference as ref


def _sequence_logps(rng: np.random.Generator, batch: int, count: int) -> tuple:
    return tuple((-20 + 5 * rng.normal(size=batch)).astype(np.float32) for _ in range(count))


def _dpo_case(beta, other_beta=0.3, **kwargs) -> Case:
    return Case(
        jaxloss.dpo,
        lambda rng, batch: _sequence_logps(rng, batch, 4),
        ref.dpo,
        kwargs={"beta": beta, **kwargs},
        differentiable=(0, 1),
        hyperparameters={"beta": other_beta},
    )


def _average_logps(rng: np.random.Generator, batch: int) -> tuple:
    return tuple(rng.uniform(-3, -0.05, size=batch).astype(np.float32) for _ in range(2))


def _kto_inputs(rng: np.random.Generator, batch: int) -> tuple:
    policy, ref_logps = _sequence_logps(rng, batch, 2)
    return policy, ref_logps, np.arange(batch) % 2 == 0


TOKENS = 5


def _token_logps(rng: np.random.Generator, batch: int) -> tuple:
    shape = (batch, TOKENS)
    logprobs = rng.uniform(-4, -0.1, size=shape)
    old = logprobs + 0.3 * rng.normal(size=shape)
    advantages = rng.normal(size=shape)
    return logprobs.astype(np.float32), old.astype(np.float32), advantages.astype(np.float32)


def _token_logp_pairs(rng: np.random.Generator, batch: int) -> tuple:
    return _token_logps(rng, batch)[:2]


CASES: dict[str, Case] = {
    "bradley_terry": Case(
        jaxloss.bradley_terry,
        scores_pair,
        ref.bradley_terry,
        kwargs={"margin": 0.5},
        differentiable=(0, 1),
        hyperparameters={"margin": 1.5},
        free=(0, 1),
    ),
    "dpo": dataclasses.replace(
        dataclasses.replace(
            _dpo_case(beta=0.3, label_smoothing=0.1, other_beta=0.05),
            invalid={"beta": 0.0, "label_smoothing": -0.1},
        ),
        free=(0, 1, 2, 3),
    ),
    "dpo[hinge]": dataclasses.replace(_dpo_case(beta=0.1, loss_type="hinge"), free=(0, 1, 2, 3)),
    "dpo[ipo]": dataclasses.replace(_dpo_case(beta=0.1, loss_type="ipo"), free=(0, 1, 2, 3)),
    "simpo": Case(
        jaxloss.simpo,
        _average_logps,
        ref.simpo,
        kwargs={"label_smoothing": 0.05},
        differentiable=(0, 1),
        hyperparameters={"gamma": 1.0},
        invalid={"beta": 0.0, "label_smoothing": 1.5},
        free=(0, 1),
    ),
    "orpo": Case(
        jaxloss.orpo,
        _average_logps,
        ref.orpo,
        kwargs={"beta": 0.5},
        differentiable=(0, 1),
        hyperparameters={"beta": 0.1},
        invalid={"beta": -1.0},
        free=(0, 1),
    ),
    "kto": Case(
        jaxloss.kto,
        _kto_inputs,
        ref.kto,
        kwargs={"beta": 0.2, "reference_point": 0.3, "undesirable_weight": 1.3},
        differentiable=(0, 1),
        hyperparameters={"beta": 0.05},
        invalid={"beta": 0.0, "desirable_weight": -1.0, "undesirable_weight": -1.0},
        free=(0, 1),
    ),
    "ppo_clip": Case(
        jaxloss.ppo_clip,
        _token_logps,
        ref.ppo_clip,
        kwargs={"epsilon": 0.2},
        differentiable=(0,),
        hyperparameters={"epsilon": 0.1},
        invalid={"epsilon": 1.5, "dual_clip": 0.5},
        free=(0, 1, 2),
        max_scale=10.0,
        token_loss=True,
        signed=True,
    ),
    "ppo_clip[dual_clip]": Case(
        jaxloss.ppo_clip,
        _token_logps,
        ref.ppo_clip,
        kwargs={"epsilon": 0.1, "dual_clip": 1.2},
        differentiable=(0,),
        hyperparameters={"dual_clip": 1.05},
        free=(0, 1, 2),
        max_scale=10.0,
        token_loss=True,
        signed=True,
    ),
    "kl_penalty[k1]": Case(
        jaxloss.kl_penalty,
        _token_logp_pairs,
        ref.kl_penalty,
        differentiable=(0, 1),
        free=(0, 1),
        max_scale=10.0,
        token_loss=True,
        signed=True,
    ),
    "kl_penalty[k2]": Case(
        jaxloss.kl_penalty,
        _token_logp_pairs,
        ref.kl_penalty,
        kwargs={"estimator": "k2"},
        differentiable=(0, 1),
        free=(0, 1),
        max_scale=10.0,
        token_loss=True,
    ),
    "kl_penalty[k3]": Case(
        jaxloss.kl_penalty,
        _token_logp_pairs,
        ref.kl_penalty,
        kwargs={"estimator": "k3"},
        differentiable=(0, 1),
        free=(0, 1),
        max_scale=10.0,
        token_loss=True,
    ),
}

# Public names that are not losses, with the module that tests them.
NOT_LOSSES = {
    "grpo_advantages": "tests/preference/test_preference.py",
    "token_logprobs": "tests/preference/test_preference.py",
    "sequence_logprobs": "tests/preference/test_preference.py",
}
