"""``linear_token_logprobs`` and ``linear_distill`` as the shared suites see them.

``linear_token_logprobs`` is not a loss (no ``reduction``): its module tests it against
``token_logprobs`` of the materialized logits. ``linear_distill``'s case runs in blocks of 3
tokens (so the last block of a batch is padded); its reference is ``generalized_jsd``'s on
the float64 materialized logits.
"""

from __future__ import annotations

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests.preference.cases_distillation import TOKENS, VOCAB, generalized_jsd

STUDENT_DIM, TEACHER_DIM = 3, 5


def heads(rng: np.random.Generator, batch: int) -> tuple:
    """Student hidden states and head, teacher hidden states and head (a sharper one)."""
    return (
        rng.normal(size=(batch, TOKENS, STUDENT_DIM)).astype(np.float32),
        rng.normal(size=(VOCAB, STUDENT_DIM)).astype(np.float32),
        rng.normal(size=(batch, TOKENS, TEACHER_DIM)).astype(np.float32),
        (1.5 * rng.normal(size=(VOCAB, TEACHER_DIM))).astype(np.float32),
    )


def linear_distill(student_hidden, student_weight, teacher_hidden, teacher_weight, **options):
    """``generalized_jsd`` of the float64 logits ``hidden @ weight.T``."""
    options.pop("chunk_size", None)
    logits = [
        np.asarray(h, np.float64) @ np.asarray(w, np.float64).T
        for h, w in ((student_hidden, student_weight), (teacher_hidden, teacher_weight))
    ]
    return generalized_jsd(*logits, **options)


CASES: dict[str, Case] = {
    "linear_distill": Case(
        jaxloss.linear_distill,
        heads,
        linear_distill,
        kwargs={"beta": 0.3, "temperature": 1.5, "chunk_size": 3},
        differentiable=(0, 1, 2, 3),
        hyperparameters={"beta": 0.7},
        invalid={"beta": 1.5, "temperature": -1.0},
        grad_modes=("rev",),
        batched=(0, 2),
        free=(0, 1, 2, 3),
    ),
}

# Public names that are not losses, with the module that tests them.
NOT_LOSSES = {"linear_token_logprobs": "tests/preference/test_linear_logprobs.py"}
