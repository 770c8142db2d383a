"""``grpo`` against TRL 1.16's ``GRPOTrainer._compute_loss`` (transcribed in torch), by hand,
under masks and on 8 devices."""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.sharding import PartitionSpec as P

import jaxloss
from tests.preference.cases_grpo import trl_compute_loss

BATCH, TOKENS, MAX_LENGTH = 6, 7, 8

# TRL's loss_type -> grpo's options (bnpo is DAPO's mean over tokens, local to a device).
LOSS_TYPES = {
    "grpo": {"loss_aggregation": "sequence_mean"},
    "bnpo": {"loss_aggregation": "token_mean"},
    "dapo": {"loss_aggregation": "token_mean"},
    "dr_grpo": {"loss_aggregation": "constant", "max_completion_length": MAX_LENGTH},
    "luspo": {"loss_aggregation": "sequence_sum"},
    "cispo": {"clip": "cispo", "loss_aggregation": "token_mean"},
}
# (TRL options, grpo options): the clip (plain, DAPO's clip-higher with δ above it, δ below
# 1 + ε_high, where TRL's min(min(w, δ)A, clip(w)A) differs from a dual clip) and the KL.
PPO_VARIANTS = [
    ({}, {}),
    (
        {"epsilon_high": 0.28, "delta": 1.5, "beta": 0.04, "use_bias_correction_kl": True},
        {"epsilon_high": 0.28, "delta": 1.5, "beta": 0.04, "kl_importance_weight": True},
    ),
    # Both defaults: TRL's use_bias_correction_kl and grpo's kl_importance_weight, False.
    (
        {"epsilon": 0.1, "epsilon_high": 0.28, "delta": 1.1, "beta": 0.3},
        {"epsilon_low": 0.1, "epsilon_high": 0.28, "delta": 1.1, "beta": 0.3},
    ),
]  # fmt: skip
CISPO_VARIANTS = [
    ({"epsilon_high": 1.1}, {"epsilon_high": 1.1}),
    (
        {"epsilon_high": 5.0, "beta": 0.04, "use_bias_correction_kl": True},
        {"epsilon_high": 5.0, "beta": 0.04, "kl_importance_weight": True},
    ),
    ({"epsilon_high": 1.1, "beta": 0.3}, {"epsilon_high": 1.1, "beta": 0.3}),
]
# TRL's luspo reads a per-sequence loss: sequence level without a KL term (variant 0); the
# others weigh masked tokens too (test_luspo_is_trls_where_trl_defines_it).
COMBINATIONS = [
    (loss_type, level, variant)
    for loss_type in LOSS_TYPES
    for level in ("token", "sequence")
    for variant in range(3)
    if loss_type != "luspo" or (level, variant) == ("sequence", 0)
]


def _combination(loss_type, level, variant):
    trl, ours = (CISPO_VARIANTS if loss_type == "cispo" else PPO_VARIANTS)[variant]
    trl = {
        "loss_type": loss_type,
        "importance_sampling_level": level,
        "max_completion_length": MAX_LENGTH,
        **trl,
    }
    return trl, {**LOSS_TYPES[loss_type], "importance_sampling": level, **ours}


def _inputs(seed=0, batch=BATCH):
    """Log-probabilities with ratios far enough from 1 to clip, advantages of both signs
    and a 0, and a mask leaving every sequence 1 to TOKENS tokens."""
    rng = np.random.default_rng(seed)
    shape = (batch, TOKENS)
    logprobs = rng.uniform(-4, -0.1, size=shape)
    old = logprobs + 0.4 * rng.normal(size=shape)
    ref = logprobs + 0.4 * rng.normal(size=shape)
    advantages = rng.normal(size=batch)
    advantages[1] = 0.0
    lengths = rng.integers(1, TOKENS + 1, size=batch)
    mask = np.arange(TOKENS) < lengths[:, None]
    floats = tuple(np.asarray(a, np.float32) for a in (logprobs, old, ref, advantages))
    return (*floats, mask)


def _trl(inputs, **options):
    logprobs, old, ref, advantages, mask = inputs
    tensors = [
        torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in (logprobs, old, ref)
    ]
    loss, _ = trl_compute_loss(
        tensors[0], tensors[1], torch.tensor(np.float64(advantages)), torch.tensor(mask),
        tensors[2], **options,
    )  # fmt: skip
    loss.backward()
    # A tensor the loss does not reach (ref at β = 0, old under CISPO) has no gradient.
    return loss.item(), [np.zeros(t.shape) if t.grad is None else t.grad.numpy() for t in tensors]


@functools.cache
def _ours_for_every_combination(seed=0):
    # One compilation for the whole table.
    logprobs, old, ref, advantages, mask = _inputs(seed)

    @jax.jit
    def everything(logprobs, old, ref):
        def one(options):
            def loss(lp, o, r):
                return jaxloss.grpo(lp, o, advantages, ref_logprobs=r, where=mask, **options)

            return jax.value_and_grad(loss, argnums=(0, 1, 2))(logprobs, old, ref)

        return [one(_combination(*c)[1]) for c in COMBINATIONS]

    return everything(logprobs, old, ref)


@pytest.mark.parametrize(
    ("loss_type", "level", "variant"),
    COMBINATIONS,
    ids=["-".join(map(str, c)) for c in COMBINATIONS],
)
def test_matches_trl_values_and_gradients(loss_type, level, variant):
    trl_options, _ = _combination(loss_type, level, variant)
    value, grads = _ours_for_every_combination()[COMBINATIONS.index((loss_type, level, variant))]
    expected, expected_grads = _trl(_inputs(), **trl_options)
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-7)
    for name, g, e in zip(("logprobs", "old", "ref"), grads, expected_grads, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-7, err_msg=name)


def test_the_table_clips_and_caps():
    # The inputs reach every branch: weights above 1 + ε_high and δ = 1.1, below 1 − ε.
    logprobs, old, _, advantages, mask = _inputs()
    weights = np.exp(logprobs - old)[mask]
    assert (weights > 1.5).any() and (weights < 0.8).any()
    assert (advantages > 0).any() and (advantages < 0).any() and (advantages == 0).any()


def _hand(**options):
    logp = np.array([[math.log(1.5), 0.0]], np.float32)
    old = np.zeros((1, 2), np.float32)
    advantages = np.array([1.0], np.float32)
    return jax.value_and_grad(lambda lp: jaxloss.grpo(lp, old, advantages, **options))(logp)


def test_hand_worked_ppo_gspo_and_cispo():
    ppo, gspo, unclipped, cispo = jax.jit(  # one compilation for the four
        lambda: (
            _hand(),
            _hand(importance_sampling="sequence"),
            _hand(importance_sampling="sequence", epsilon_low=0.5),
            _hand(clip="cispo", epsilon_high=1.2),
        )
    )()
    # w = (1.5, 1), A = 1, ε = 0.2: the first token clipped at 1.2 (no gradient).
    value, grad = ppo
    np.testing.assert_allclose(value, -1.1, rtol=1e-6)
    np.testing.assert_allclose(grad, [[0.0, -0.5]], atol=1e-7)
    # GSPO: one weight sqrt(1.5) = 1.2247 for both tokens, clipped at 1.2.
    value, grad = gspo
    np.testing.assert_allclose(value, -1.2, rtol=1e-6)
    np.testing.assert_allclose(grad, [[0.0, 0.0]], atol=1e-7)
    # Unclipped (ε = 0.5): −sqrt(1.5) per token, its gradient shared by the tokens.
    value, grad = unclipped
    np.testing.assert_allclose(value, -math.sqrt(1.5), rtol=1e-6)
    np.testing.assert_allclose(grad, np.full((1, 2), -math.sqrt(1.5) / 2), rtol=1e-6)
    # CISPO: −sg[min(w, 1.2)] A log π: the value −1.2 log 1.5 / 2, the gradient −min(w, 1.2)/2.
    value, grad = cispo
    np.testing.assert_allclose(value, -1.2 * math.log(1.5) / 2, rtol=1e-6)
    np.testing.assert_allclose(grad, [[-0.6, -0.5]], rtol=1e-6)


def test_hand_worked_delta_and_kl():
    old, advantages = np.zeros((1, 1), np.float32), np.array([-1.0], np.float32)
    logp = np.full((1, 1), math.log(3.0), np.float32)  # w = 3, A = −1: the unclipped branch, 3
    kl = math.exp(-1.0)

    @jax.jit  # one compilation for every value below
    def run():
        # k3 at d = log π − log π_ref = 1 is e^{-1} − 1 + 1, weighted by w = 3 or not.
        options = {"ref_logprobs": logp - 1.0, "beta": 0.5}
        return (
            jaxloss.grpo(logp, old, advantages),
            jaxloss.grpo(logp, old, advantages, delta=2.0),
            jaxloss.grpo(logp, old, advantages, delta=1.1),
            jaxloss.grpo(logp, old, advantages, kl_importance_weight=True, **options),
            jaxloss.grpo(logp, old, advantages, **options),
            jaxloss.grpo(logp, old, advantages, kl_estimator="k2", kl_importance_weight=False,
                         **options),
        )  # fmt: skip

    plain, delta_2, delta_1_1, weighted_k3, k3, k2 = run()
    np.testing.assert_allclose(plain, 3.0, rtol=1e-6)
    np.testing.assert_allclose(delta_2, 2.0, rtol=1e-6)
    # δ below 1 + ε: TRL's −min(min(w, δ)A, clip(w)A) = max(δ, 1.2) = 1.2 here.
    np.testing.assert_allclose(delta_1_1, 1.2, rtol=1e-6)
    np.testing.assert_allclose(weighted_k3, 3.0 + 0.5 * 3 * kl, rtol=1e-6)
    np.testing.assert_allclose(k3, 3.0 + 0.5 * kl, rtol=1e-6)
    np.testing.assert_allclose(k2, 3.0 + 0.5 * 0.5, rtol=1e-6)


def test_luspo_is_trls_where_trl_defines_it():
    # TRL's luspo, (per_token_loss * mask.sum(1, keepdim=True)).mean(), reads one loss per
    # sequence ([B, 1]: sequence level, beta = 0; COMBINATIONS checks it there). Elsewhere
    # jaxloss keeps LUSPO's definition, each sequence's sum over its valid tokens, on TRL's
    # own per-token losses; TRL's code weighs every token, masked ones too, by its length.
    inputs = _inputs()
    logprobs, old, ref, advantages, mask = inputs
    options = {"loss_aggregation": "sequence_sum", "beta": 0.04}
    value = jax.jit(
        lambda: jaxloss.grpo(logprobs, old, advantages, ref_logprobs=ref, where=mask, **options)
    )()
    tensors = [torch.tensor(np.asarray(a, np.float64)) for a in (logprobs, old, ref)]
    trl_value, per_token = trl_compute_loss(
        tensors[0], tensors[1], torch.tensor(np.float64(advantages)), torch.tensor(mask),
        tensors[2], loss_type="luspo", beta=0.04,
    )  # fmt: skip
    lusp = float((per_token.numpy() * mask).sum(-1).mean())
    np.testing.assert_allclose(value, lusp, rtol=1e-5)
    assert abs(trl_value.item() - lusp) > 1e-3  # TRL's code gives another number here


def test_a_weight_exactly_at_delta_passes_torchs_clamp_gradient():
    # w = δ = 2, A = −1: the loss is −A·max(min(w, δ), clip(w)) = min(w, δ), whose gradient
    # in log π is w = 2 on the bound with torch's clamp (TRL); jnp.minimum passed half.
    log_two = jnp.log(jnp.float32(2.0))
    old, advantages = np.zeros((1, 1), np.float32), np.array([-1.0], np.float32)

    def loss(logp):
        return jaxloss.grpo(logp, old, advantages, delta=2.0, epsilon_high=0.28)

    value, grad = jax.value_and_grad(loss)(jnp.full((1, 1), log_two))
    np.testing.assert_allclose(value, 2.0, rtol=1e-6)
    np.testing.assert_allclose(grad, [[2.0]], rtol=1e-6)


AGGREGATIONS = [
    ("sequence_mean", 1.0),
    ("token_mean", 1 / 3),
    ("constant", 1 / 8),
    ("sequence_sum", 0.5),
]


@functools.cache
@jax.jit
def _aggregations_by_hand():
    """The values of the cases below in one compilation."""
    zeros = np.zeros((2, 2), np.float32)
    where = np.array([[True, True], [True, False]])
    advantages = np.array([1.0, -3.0], np.float32)
    return (
        {
            aggregation: jaxloss.grpo(
                zeros,
                zeros,
                advantages,
                where=where,
                loss_aggregation=aggregation,
                max_completion_length=4,
            )
            for aggregation, _ in AGGREGATIONS
        },
        jaxloss.grpo(zeros, zeros, advantages, where=where, reduction="none"),
        jaxloss.grpo(zeros, zeros, advantages, where=where, reduction="sum"),
    )


@pytest.mark.parametrize(("aggregation", "expected"), AGGREGATIONS)
def test_hand_worked_aggregations(aggregation, expected):
    # w = 1, A = (1, −3): token losses (−1, −1) and (3); the second sequence has one token.
    values, none, total = _aggregations_by_hand()
    np.testing.assert_allclose(values[aggregation], expected, rtol=1e-6)
    np.testing.assert_array_equal(none, [[-1.0, -1.0], [3.0, 0.0]])
    np.testing.assert_allclose(total, 1.0)


def test_per_token_advantages_as_trl_accepts():
    logprobs, old, _, advantages, mask = _inputs()
    per_token = np.broadcast_to(advantages[:, None], logprobs.shape)
    ours, expected = jax.jit(  # one compilation for both
        lambda: (
            jaxloss.grpo(logprobs, old, per_token, where=mask),
            jaxloss.grpo(logprobs, old, advantages, where=mask),
        )
    )()
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


def test_a_sequence_without_tokens_is_dropped_where_trl_counts_it():
    # TRL's mean over sequences counts an all-masked sequence (mask_truncated_completions) as
    # a 0; grpo leaves it out, as dropping it would.
    logprobs, old, ref, advantages, mask = _inputs()
    mask = mask.copy()
    mask[2] = False
    keep = np.arange(BATCH) != 2
    ours = jax.jit(lambda: jaxloss.grpo(logprobs, old, advantages, where=mask))()
    trl_dropped, _ = _trl(
        tuple(a[keep] for a in (logprobs, old, ref, advantages, mask)), loss_type="grpo"
    )
    trl_counted, _ = _trl((logprobs, old, ref, advantages, mask), loss_type="grpo")
    np.testing.assert_allclose(ours, trl_dropped, rtol=1e-5)
    np.testing.assert_allclose(trl_counted, trl_dropped * (BATCH - 1) / BATCH, rtol=1e-9)


@pytest.mark.parametrize(
    "options",
    [
        {"clip": "cispo", "epsilon_high": 1.1, "loss_aggregation": "constant",
         "max_completion_length": MAX_LENGTH},
        {"importance_sampling": "sequence", "loss_aggregation": "sequence_sum", "beta": 0.1},
    ],
    ids=["cispo-constant", "gspo-luspo-kl"],
)  # fmt: skip
def test_nan_in_masked_tokens_reaches_nothing(options):
    logprobs, old, ref, advantages, mask = _inputs()

    def value_and_grads(lp, o, r):
        return jax.jit(
            jax.value_and_grad(
                lambda lp, o, r: jaxloss.grpo(lp, o, advantages, ref_logprobs=r, where=mask,
                                              **options),
                argnums=(0, 1, 2),
            )
        )(lp, o, r)  # fmt: skip

    clean, clean_grads = value_and_grads(logprobs, old, ref)
    poisoned = [
        np.where(mask, a, np.float32(p))
        for a, p in zip((logprobs, old, ref), (np.nan, np.inf, -1e30), strict=True)
    ]
    value, grads = value_and_grads(*poisoned)
    np.testing.assert_allclose(value, clean, rtol=1e-6)
    for g, c in zip(grads, clean_grads, strict=True):
        assert np.all(np.asarray(g)[~mask] == 0)
        np.testing.assert_allclose(g, c, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "options",
    [
        {"loss_aggregation": "constant", "max_completion_length": MAX_LENGTH},
        {"loss_aggregation": "sequence_sum", "beta": 0.1},
        {"clip": "cispo", "epsilon_high": 1.1, "importance_sampling": "sequence"},
    ],
    ids=["constant", "sequence_sum-kl", "cispo-gspo-token_mean"],
)
def test_8_devices_equal_the_whole_batch(options):
    # Device d holds d fully masked sequences; the means are over the whole batch.
    devices = 8
    logprobs, old, ref, advantages, mask = _inputs(1, batch=2 * devices)
    mask = mask.copy()
    mask[[2, 3, 4, 5, 7]] = False
    mesh = jax.make_mesh((devices,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))

    def loss(lp, o, a, r, m, axis_name=None):
        return jaxloss.grpo(lp, o, a, ref_logprobs=r, where=m, axis_name=axis_name, **options)

    sharded = jax.shard_map(
        functools.partial(loss, axis_name="batch"),
        mesh=mesh,
        in_specs=(P("batch"),) * 5,
        out_specs=P(),
    )
    args = (logprobs, old, advantages, ref, mask)
    value, grad = jax.jit(jax.value_and_grad(sharded))(*args)
    whole, grad_whole = jax.jit(jax.value_and_grad(loss))(*args)
    np.testing.assert_allclose(value, whole, rtol=1e-5)
    np.testing.assert_allclose(grad, grad_whole, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"importance_sampling": "sentence"}, "importance_sampling"),
        ({"clip": "dual"}, "clip"),
        ({"loss_aggregation": "mean"}, "loss_aggregation"),
        ({"kl_estimator": "k4"}, "kl_estimator"),
        ({"clip": "cispo"}, "epsilon_high"),
        ({"clip": "cispo", "epsilon_high": 5.0, "delta": 2.0}, "delta"),
        ({"clip": "cispo", "epsilon_high": 0.0}, "epsilon_high"),
        ({"loss_aggregation": "constant"}, "max_completion_length"),
        ({"loss_aggregation": "constant", "max_completion_length": 0}, "max_completion_length"),
        ({"beta": 0.1}, "ref_logprobs"),
        ({"epsilon_low": 1.5}, "epsilon_low"),
        ({"epsilon_high": -0.1}, "epsilon_high"),
        ({"reduction": "batchmean"}, "reduction"),
    ],
)
def test_bad_options_are_value_errors(options, match):
    logprobs, old, _, advantages, _ = _inputs()
    with pytest.raises(ValueError, match=match):
        jaxloss.grpo(logprobs, old, advantages, **options)


def test_scalar_logprobs_are_a_value_error():
    with pytest.raises(ValueError, match="logprobs"):
        jaxloss.grpo(0.0, 0.0, 1.0)


def test_weighted_kl_far_below_the_reference_is_finite_and_exact():
    # w · k3 with w = e^{lp − old} and k3 = e^{ref − lp} − (ref − lp) − 1: with old = ref =
    # 0 it is 1 + (lp − 1) e^{lp}, which tends to 1. The product form gave 0 from lp ≈ −88
    # (w underflows against k3's 1e38) and NaN past it (0 · inf). Advantages 0: the KL alone.
    logprobs = np.array([-1e4, -89.0, -88.0, -60.0, -40.5, -39.5, -3.0, 0.5], np.float32)
    zeros = np.zeros_like(logprobs)

    @jax.jit
    def run(lp):
        def loss(lp):
            return jaxloss.grpo(
                lp,
                zeros,
                jnp.float32(0.0),
                ref_logprobs=zeros,
                beta=1.0,
                kl_importance_weight=True,
                reduction="none",
            )

        return loss(lp), jax.grad(lambda lp: jnp.sum(loss(lp)))(lp)

    value, grad = run(logprobs)
    x = logprobs.astype(np.float64)
    np.testing.assert_allclose(value, 1 + (x - 1) * np.exp(x), rtol=1e-6)
    np.testing.assert_allclose(grad, x * np.exp(x), rtol=1e-5, atol=1e-7)


def test_an_overflowing_ratio_gives_ppo_clips_infinite_gradient_not_nan():
    # Log-ratio 1e4: with A < 0 the unclipped branch is kept, ρA = −inf, and its gradient
    # is inf as ppo_clip's; min/max of the logarithms multiplied the clipped branch's inf
    # cotangent by 0 (NaN). With A > 0 the clipped branch is kept: loss −1.2 A, gradient 0.
    # At the clip's bound (a tie) the unclipped branch's gradient, as torch's min and clamp.
    logprobs = np.array([[1e4, 1e4, np.log1p(np.float32(0.2))]], np.float32)
    advantages = np.array([[-1.0, 2.0, 1.0]], np.float32)
    zeros = np.zeros_like(logprobs)

    @jax.jit
    def run(lp):
        def grpo(lp):
            return jaxloss.grpo(lp, zeros, advantages, reduction="none")

        def ppo(lp):
            return jaxloss.ppo_clip(lp, zeros, advantages, epsilon=0.2, reduction="none")

        return [(f(lp), jax.grad(lambda x, f=f: jnp.sum(f(x)))(lp)) for f in (grpo, ppo)]

    (value, grad), (ppo_value, ppo_grad) = run(logprobs)
    ratio = np.exp(np.log1p(np.float32(0.2)))
    np.testing.assert_allclose(value, [[np.inf, -2.4, -ratio]], rtol=1e-6)
    np.testing.assert_allclose(grad, [[np.inf, 0.0, -ratio]], rtol=1e-6)
    np.testing.assert_array_equal(value, ppo_value)
    np.testing.assert_array_equal(grad, ppo_grad)


IMPOSSIBLE_TOKEN_OPTIONS = {
    "k1": {"kl_estimator": "k1"},
    "k2": {"kl_estimator": "k2"},
    "gspo-k1": {"kl_estimator": "k1", "importance_sampling": "sequence"},
    "gspo-k2": {"kl_estimator": "k2", "importance_sampling": "sequence"},
    "cispo": {"clip": "cispo", "epsilon_high": 5.0, "beta": 0.0},
    "cispo-k1": {"clip": "cispo", "epsilon_high": 5.0, "kl_estimator": "k1"},
    "cispo-gspo-k2": {"clip": "cispo", "epsilon_high": 5.0, "kl_estimator": "k2",
                      "importance_sampling": "sequence"},
}  # fmt: skip


@functools.cache
def _impossible_and_very_unlikely():
    """Each option's values and gradients with one token of each sequence at log π = −inf
    (impossible) and at −1e4, where float32 has reached the limit (w = e^{−1e4} = 0)."""
    impossible = np.array([[-np.inf, -1.0, -0.3], [-0.5, -2.0, -np.inf]], np.float32)
    old = np.array([[-1.0, -2.0, -0.2], [-1.0, -1.5, -0.7]], np.float32)
    ref = np.array([[-1.5, -2.0, -0.4], [-1.0, -0.5, -0.9]], np.float32)
    advantages = np.array([1.0, -1.0], np.float32)

    @jax.jit
    def run(lp):
        def one(options):
            # The weighted KL (kl_importance_weight): w times k1, k2 tends to 0 as π → 0.
            options = {"beta": 0.5, "reduction": "none", "kl_importance_weight": True, **options}

            def loss(lp, o, r):
                return jaxloss.grpo(lp, o, advantages, ref_logprobs=r, **options)

            values = loss(lp, old, ref)
            grads = jax.grad(lambda *a: jnp.sum(loss(*a)), argnums=(0, 1, 2))(lp, old, ref)
            return values, grads

        return {key: one(options) for key, options in IMPOSSIBLE_TOKEN_OPTIONS.items()}

    return run(impossible), run(np.where(np.isinf(impossible), -1e4, impossible))


@pytest.mark.parametrize("key", list(IMPOSSIBLE_TOKEN_OPTIONS))
def test_an_impossible_token_gives_the_limit(key):
    # π → 0: w d, w d²/2 and w log π tend to 0 (w = π/π_old, or its geometric mean over
    # the sequence), as at log π = −1e4. They were w · (±inf) = NaN, value and gradient
    # (k3, whose limit is not 0, has its own: test_weighted_kl_far_below_the_reference_...).
    impossible, very_unlikely = _impossible_and_very_unlikely()
    (value, grads), (expected, expected_grads) = impossible[key], very_unlikely[key]
    np.testing.assert_allclose(value, expected, rtol=1e-6, atol=0)
    for g, e in zip(grads, expected_grads, strict=True):
        assert np.all(np.isfinite(g)), g
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    ("logprobs_shape", "advantages_shape"),
    [((2, 4), (3,)), ((2, 4), (4,)), ((5, 2, 4), (3, 2)), ((2, 4), (3, 4))],
)
def test_misfit_advantages_are_named_with_their_own_shape(logprobs_shape, advantages_shape):
    # One per sequence is spread over the tokens as [..., 1]: the error named that (3, 1).
    logprobs = np.zeros(logprobs_shape, np.float32)
    advantages = np.ones(advantages_shape, np.float32)
    own = re.escape(f"`advantages` {advantages_shape}")
    with pytest.raises(ValueError, match=own) as error:
        jaxloss.grpo(logprobs, logprobs, advantages)
    assert f"{(*advantages_shape, 1)}" not in str(error.value)
