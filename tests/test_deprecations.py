"""Spellings renamed in 0.2.0 keep working until 0.3.0, with a DeprecationWarning.

Each old spelling gives the value of the new one, warns once naming both, and is attributed
to the caller's line; giving both spellings is a TypeError. The list is CHANGELOG.md's
"Renamed" section and ``docs/naming.md``.
"""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest

import jaxloss

# The inputs, jax arrays as before, rounded to float32 by NumPy and put on the device (no
# compilation at import, in every process); the (log-)probabilities in one compiled function.
RNG = np.random.default_rng(0)
LOGPROBS, PROBS = jax.jit(lambda a, b: (jax.nn.log_softmax(a), jax.nn.softmax(b)))(
    RNG.normal(size=(4, 3)).astype(np.float32), RNG.normal(size=(4, 3)).astype(np.float32)
)
LABELS = jax.device_put(np.array([0, 2, 1, 2], np.int32))
_SEQ = [(RNG.normal(size=4) - 5).astype(np.float32) for _ in range(4)]
SEQ = jax.device_put(_SEQ)
SEQ_TENTHS = jax.device_put([s / np.float32(10) for s in _SEQ[:2]])  # SEQ[i] / 10
_X1, _X2 = (RNG.normal(size=(4, 3)).astype(np.float32) for _ in range(2))
X1, X2 = jax.device_put((_X1, _X2))
_SIGNS = np.array([1, -1, 1, -1], np.int32)
SIGNS = jax.device_put(_SIGNS)
CENTERS = jax.device_put(RNG.normal(size=(3, 3)).astype(np.float32))

# (function, positional inputs, {old keyword: value}, the new keyword of each old one)
RENAMES = {
    "nll": (jaxloss.nll, (), {"log_probs": LOGPROBS, "labels": LABELS}, {"log_probs": "logprobs"}),
    "kl_div": (
        jaxloss.kl_div,
        (),
        {"log_input": LOGPROBS, "target": PROBS},
        {"log_input": "logprobs", "target": "targets"},
    ),
    "dpo": (
        jaxloss.dpo,
        (),
        {
            "policy_chosen_logps": SEQ[0],
            "policy_rejected_logps": SEQ[1],
            "ref_chosen_logps": SEQ[2],
            "ref_rejected_logps": SEQ[3],
        },
        {
            "policy_chosen_logps": "policy_chosen_logprobs",
            "policy_rejected_logps": "policy_rejected_logprobs",
            "ref_chosen_logps": "ref_chosen_logprobs",
            "ref_rejected_logps": "ref_rejected_logprobs",
        },
    ),
    "simpo": (
        jaxloss.simpo,
        (),
        {"chosen_logps": SEQ_TENTHS[0], "rejected_logps": SEQ_TENTHS[1]},
        {"chosen_logps": "chosen_logprobs", "rejected_logps": "rejected_logprobs"},
    ),
    "orpo": (
        jaxloss.orpo,
        (),
        {"chosen_logps": SEQ_TENTHS[0], "rejected_logps": SEQ_TENTHS[1]},
        {"chosen_logps": "chosen_logprobs", "rejected_logps": "rejected_logprobs"},
    ),
    "kto": (
        jaxloss.kto,
        (),
        {"policy_logps": SEQ[0], "ref_logps": SEQ[1], "desirable": jax.device_put(_SIGNS > 0)},
        {"policy_logps": "policy_logprobs", "ref_logps": "ref_logprobs"},
    ),
    "margin_ranking": (
        jaxloss.margin_ranking,
        tuple(jax.device_put((_X1[:, 0], _X2[:, 0]))),
        {"y": SIGNS},
        {"y": "targets"},
    ),
    "cosine_embedding": (jaxloss.cosine_embedding, (X1, X2), {"y": SIGNS}, {"y": "targets"}),
    "center_loss": (
        jaxloss.center_loss,
        (),
        {"features": X1, "centers": CENTERS, "labels": LABELS},
        {"features": "embeddings"},
    ),
    "center_update": (
        jaxloss.center_update,
        (CENTERS,),
        {"features": X1, "labels": LABELS},
        {"features": "embeddings"},
    ),
    "grpo_advantages": (
        jaxloss.grpo_advantages,
        (X1,),
        {"scale": "batch"},
        {"scale": "scale_rewards"},
    ),
}


def _new_keywords(old_kwargs: dict, renamed: dict) -> dict:
    return {renamed.get(key, key): value for key, value in old_kwargs.items()}


@pytest.mark.parametrize("name", sorted(RENAMES))
def test_old_spelling_warns_and_gives_the_new_value(name):
    fn, args, old_kwargs, renamed = RENAMES[name]
    expected = fn(*args, **_new_keywords(old_kwargs, renamed))
    with pytest.warns(DeprecationWarning) as record:
        got = fn(*args, **old_kwargs)
    np.testing.assert_array_equal(got, expected)
    messages = [str(w.message) for w in record]
    for old, new in renamed.items():
        assert any(f"`{old}`" in m and f"`{new}`" in m and "0.3.0" in m for m in messages)
    # Attributed to this file (the caller), not to jaxloss.
    assert all(w.filename == __file__ for w in record), [w.filename for w in record]


@pytest.mark.parametrize("name", sorted(RENAMES))
def test_new_spelling_does_not_warn(name):
    fn, args, old_kwargs, renamed = RENAMES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        fn(*args, **_new_keywords(old_kwargs, renamed))


@pytest.mark.parametrize("name", sorted(RENAMES))
def test_both_spellings_is_a_type_error(name):
    fn, args, old_kwargs, renamed = RENAMES[name]
    old = next(iter(renamed))
    both = {**old_kwargs, renamed[old]: old_kwargs[old]}
    with pytest.raises(TypeError, match=f"`{renamed[old]}`.*`{old}`"):
        fn(*args, **both)


def test_center_loss_in_the_old_order_warns_and_gives_the_new_value():
    expected = jaxloss.center_loss(X1, CENTERS, LABELS, reduction="none")
    with pytest.warns(DeprecationWarning, match=r"\(embeddings, centers, labels\)") as record:
        got = jaxloss.center_loss(X1, LABELS, CENTERS, reduction="none")
    np.testing.assert_array_equal(got, expected)
    assert record[0].filename == __file__
    # Under jit too (the order is told by dtypes, known at trace time).
    with pytest.warns(DeprecationWarning):
        jitted = jax.jit(lambda x, y, c: jaxloss.center_loss(x, y, c, reduction="none"))
        np.testing.assert_allclose(jitted(X1, LABELS, CENTERS), expected, rtol=1e-6)
    # Python lists, as every loss takes them (result_type refused a list of lists).
    lists = (np.asarray(X1).tolist(), np.asarray(CENTERS).tolist(), np.asarray(LABELS).tolist())
    np.testing.assert_allclose(jaxloss.center_loss(*lists, reduction="none"), expected, rtol=1e-6)
    with pytest.warns(DeprecationWarning):
        got = jaxloss.center_loss(lists[0], lists[2], lists[1], reduction="none")
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # The old order with the centers by keyword (Python cannot bind it to the new order).
    with pytest.warns(DeprecationWarning, match=r"\(embeddings, centers, labels\)") as record:
        got = jaxloss.center_loss(X1, LABELS, centers=CENTERS, reduction="none")
    np.testing.assert_array_equal(got, expected)
    assert record[0].filename == __file__


def test_grpo_advantages_takes_trls_booleans():
    rewards = np.asarray(X1)
    np.testing.assert_array_equal(
        jaxloss.grpo_advantages(rewards, scale_rewards=True),
        jaxloss.grpo_advantages(rewards, scale_rewards="group"),
    )
    np.testing.assert_array_equal(
        jaxloss.grpo_advantages(rewards, scale_rewards=False),
        jaxloss.grpo_advantages(rewards, scale_rewards="none"),
    )
