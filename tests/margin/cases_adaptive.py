"""The face heads with running statistics as the shared suites see them.

The running statistic is a traced hyperparameter (``t``, ``batch_mean``): the no-retrace
test changes it. AdaFace's case sets statistics near the inputs' norms (about 2 for
4-dimensional normal rows), so the margin scaler spans [−1, 1], clipped at both ends.
"""

from __future__ import annotations

import dataclasses

import jaxloss
from tests.margin import reference_adaptive as ref
from tests.margin.cases import _chunked, _embeddings_centers_labels, _margin_case

# A margin large enough that some targets take ArcFace's fallback (θ + m > π).
_CURRICULARFACE = {"scale": 5.0, "margin": 1.2, "t": 0.3}
_ADAFACE = {"scale": 5.0, "margin": 0.4, "h": 0.333, "batch_mean": 2.0, "batch_std": 0.4}


def _case(fn, reference, hyperparameter, chunk_size=None, differentiable=(0, 1), **kwargs):
    case = (
        _margin_case(fn, reference, **kwargs)
        if chunk_size is None
        else _chunked(fn, reference, chunk_size, **kwargs)
    )
    return dataclasses.replace(
        case,
        free=(0, 1),
        class_labels=(2, 1),
        hyperparameters=hyperparameter,
        make_inputs=_embeddings_centers_labels,
        differentiable=differentiable,
    )


CASES = {
    "curricularface": _case(
        jaxloss.curricularface, ref.curricularface, {"t": 0.7}, **_CURRICULARFACE
    ),
    # The margin reads ‖x‖ through stop_gradient (as the official code): the gradient of
    # the embeddings is not the numerical one, and is tested in tests/margin/test_adaptive.py.
    "adaface": dataclasses.replace(
        _case(jaxloss.adaface, ref.adaface, {"batch_mean": 2.5}, differentiable=(1,), **_ADAFACE),
        invalid={"eps": 1.0, "h": -0.333},
    ),
}

# Public names that are not losses, with the module that tests them.
NOT_LOSSES = {
    "curricularface_update": "tests/margin/test_adaptive.py",
    "adaface_update": "tests/margin/test_adaptive.py",
}
