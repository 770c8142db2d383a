"""Preference and RLHF losses: TRL's formulas in torch, extreme values, masks, helpers."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.experimental.checkify import JaxRuntimeError

import jaxloss
from tests._suite import compiled
from tests._suite.compiled import compile_as_users
from tests.preference import reference as ref


def _torch_value_and_grads(fn, *arrays):
    tensors = [torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in arrays]
    value = fn(*tensors)
    value.backward()
    return value.item(), [t.grad.numpy() for t in tensors]


# Every JAX computation of a test runs in one compiled function (eager dispatch would compile
# each operation on its own); parametrized cases with the same input shapes are computed
# together, once, by a cached function, and each case checks its own part.


def _assert_close(ours, arrays, theirs, rtol=1e-5):
    (value, grads), (expected, expected_grads) = ours, _torch_value_and_grads(theirs, *arrays)
    np.testing.assert_allclose(value, expected, rtol=rtol, atol=1e-6)
    for g, e in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


def _assert_matches(fn, theirs, *arrays, rtol=1e-5):
    arrays = [np.asarray(a, np.float32) for a in arrays]
    (ours,) = compiled.values_and_grads_of_cases(fn, [(arrays, {})])
    _assert_close(ours, arrays, theirs, rtol)


def _sequence_logps(seed, n=12, count=4):
    rng = np.random.default_rng(seed)
    return [-30 + 8 * rng.normal(size=n) for _ in range(count)]


def _assert_finite(value, grads):
    assert np.isfinite(value), value
    for g in grads:
        assert np.all(np.isfinite(g)), g


EXTREMES = np.array([-1e4, -1e4, 0.0, 1e4, -3.0, 1e4], np.float32)


# ------------------------------------------------------------------------- reward model, DPO


def test_bradley_terry_matches_trl_reward_trainer():
    chosen, rejected, margin = _sequence_logps(0, count=3)

    def theirs(c, r):
        return -F.logsigmoid(c - r - torch.tensor(margin / 10)).mean()

    _assert_matches(
        lambda c, r: jaxloss.bradley_terry(c, r, margin=margin / 10), theirs, chosen, rejected
    )


DPO_GRID = [("sigmoid", 0.0), ("sigmoid", 0.2), ("hinge", 0.0), ("ipo", 0.0)]


DPO_BETAS = [0.1, 0.5]


@functools.cache
def _dpo_ours():
    cases = [
        (_sequence_logps(index), {"beta": beta, "label_smoothing": smoothing, "loss_type": kind})
        for index, (kind, smoothing) in enumerate(DPO_GRID)
        for beta in DPO_BETAS
    ]
    return compiled.values_and_grads_of_cases(jaxloss.dpo, cases)


@pytest.mark.parametrize("loss_type, label_smoothing", DPO_GRID)
@pytest.mark.parametrize("beta", DPO_BETAS)
def test_dpo_matches_trl(loss_type, label_smoothing, beta):
    index = DPO_GRID.index((loss_type, label_smoothing))
    logps = _sequence_logps(index)

    def theirs(pc, pr, rc, rr):  # TRL's DPOTrainer.dpo_loss, as published
        logits = (pc - pr) - (rc - rr)
        if loss_type == "sigmoid":
            losses = (
                -F.logsigmoid(beta * logits) * (1 - label_smoothing)
                - F.logsigmoid(-beta * logits) * label_smoothing
            )
        elif loss_type == "hinge":
            losses = torch.relu(1 - beta * logits)
        else:
            losses = (logits - 1 / (2 * beta)) ** 2
        return losses.mean()

    ours = _dpo_ours()[index * len(DPO_BETAS) + DPO_BETAS.index(beta)]
    _assert_close(ours, [np.asarray(a, np.float32) for a in logps], theirs)


def test_dpo_rejects_smoothing_it_would_ignore_and_unknown_types():
    logps = [np.zeros(2, np.float32)] * 4
    with pytest.raises(ValueError, match="label_smoothing"):
        jaxloss.dpo(*logps, loss_type="ipo", label_smoothing=0.1)
    with pytest.raises(ValueError, match="loss_type"):
        jaxloss.dpo(*logps, loss_type="sft")


def test_simpo_matches_trl_cpo_trainer():
    chosen, rejected = (x / 20 for x in _sequence_logps(1, count=2))
    beta, gamma, smoothing = 2.5, 0.8, 0.1

    def theirs(c, r):
        logits = (c - r) - gamma / beta
        return (
            -F.logsigmoid(beta * logits) * (1 - smoothing)
            - F.logsigmoid(-beta * logits) * smoothing
        ).mean()

    _assert_matches(
        lambda c, r: jaxloss.simpo(c, r, beta=beta, gamma=gamma, label_smoothing=smoothing),
        theirs,
        chosen,
        rejected,
    )


def test_orpo_matches_trl_per_pair():
    rng = np.random.default_rng(2)
    chosen, rejected = rng.uniform(-3, -0.01, size=(2, 10))
    beta = 0.25

    def theirs(c, r):  # TRL's odds_ratio_loss plus the per-pair NLL of the chosen answer
        log_odds = (c - r) - (torch.log1p(-torch.exp(c)) - torch.log1p(-torch.exp(r)))
        return (-c - beta * F.logsigmoid(log_odds)).mean()

    _assert_matches(lambda c, r: jaxloss.orpo(c, r, beta=beta), theirs, chosen, rejected)


def test_orpo_is_finite_at_probability_one_and_at_tiny_probabilities():
    chosen = np.array([0.0, -1e-12, -1e4, -1e4, 0.0, -0.5], np.float32)
    rejected = np.array([0.0, -1e4, 0.0, -1e4, -1e-12, -0.5], np.float32)
    logps = (-1e-5, -1e-3, -0.5, -5.0, -40.0)

    @jax.jit
    def run(chosen, rejected, logps):
        odds = [jaxloss.preference.pairs._log_odds(logp) for logp in logps]
        return compiled.value_and_grads(jaxloss.orpo, chosen, rejected), odds

    (value, grads), odds = run(chosen, rejected, [np.float32(logp) for logp in logps])
    _assert_finite(value, grads)
    # log(1 − p) is accurate near p = 1 (expm1) and for tiny p (log1p).
    for logp, odd in zip(logps, odds, strict=True):
        assert float(odd) == pytest.approx(logp - math.log(-math.expm1(logp)), rel=1e-5)


def test_caps_reached_exactly_pass_the_whole_gradient():
    # ORPO's cap on the average log-probability (−1e-6) and the α-divergence's on its
    # exponent (80, TRL's torch.clamp): on the cap itself the gradient is the one just
    # inside it, where jnp.minimum passed half.
    def orpo_grad(c):
        return jax.grad(lambda c: jaxloss.orpo(c, jnp.float32(-1.0), beta=1.0))(c)

    def alpha_grad(u):  # α = 0.5: the exponent (α − 1) u is 80 at u = −160
        def loss(u):
            zero = jnp.float32(0.0)
            return jaxloss.dpo(
                u, zero, zero, zero, beta=1e-35, f_divergence="alpha_divergence",
                f_divergence_alpha=0.5,
            )  # fmt: skip

        return jax.grad(loss)(u)

    on_cap, inside = jax.jit(
        lambda: (
            (orpo_grad(jnp.float32(-1e-6)), alpha_grad(jnp.float32(-160.0))),
            (orpo_grad(jnp.float32(-1.0001e-6)), alpha_grad(jnp.float32(-159.999))),
        )
    )()
    for on, near in zip(on_cap, inside, strict=True):
        np.testing.assert_allclose(on, near, rtol=2e-3)


def test_kto_reads_a_traced_minus_one_as_undesirable():
    # Integer labels are 0/1; a concrete -1 is refused, and a traced one (unchecked) is
    # undesirable by its sign, where a cast to bool read every ±1 label as desirable.
    policy, reference = (x.astype(np.float32) for x in _sequence_logps(5, count=2))
    signs, bits = np.where(np.arange(12) % 3 != 0, 1, -1), np.int32(np.arange(12) % 3 != 0)
    by_signs, by_bits = jax.jit(lambda p, r, s, b: (jaxloss.kto(p, r, s), jaxloss.kto(p, r, b)))(
        policy, reference, signs, bits
    )
    np.testing.assert_array_equal(by_signs, by_bits)
    with pytest.raises(ValueError, match="desirable"):
        jaxloss.kto(policy, reference, signs)


def test_kto_matches_trl_and_stops_the_gradient_of_the_reference_point():
    policy, reference = _sequence_logps(3, count=2)
    desirable = np.arange(12) % 3 != 0
    kl, beta = 0.7, 0.2

    def theirs(p, r):  # TRL's kto_loss: chosen and rejected halves, then the mean
        rewards = p - r
        chosen = 1 - torch.sigmoid(beta * (rewards - kl))
        rejected = 1 - torch.sigmoid(beta * (kl - rewards))
        mask = torch.tensor(desirable)
        return torch.cat([1.0 * chosen[mask], 1.5 * rejected[~mask]]).mean()

    def ours(p, r):
        return jaxloss.kto(p, r, desirable, reference_point=kl, beta=beta, undesirable_weight=1.5)

    policy, reference = (x.astype(np.float32) for x in (policy, reference))

    @jax.jit  # the value and gradients, the reference point's gradient, the clamp
    def run(p, r, points):
        point_grad = jax.grad(lambda z: jaxloss.kto(p, r, desirable, reference_point=z))(points[0])
        clamped = [jaxloss.kto(p, r, desirable, reference_point=z) for z in points[1:]]
        return compiled.value_and_grads(ours, p, r), point_grad, clamped

    points = [np.float32(1.0), np.float32(-3.0), np.float32(0.0)]
    value_and_grads, point_grad, (negative, zero) = run(policy, reference, points)
    _assert_close(value_and_grads, [policy, reference], theirs)
    assert float(point_grad) == 0.0
    # A negative KL estimate is clamped at 0, as TRL's.
    np.testing.assert_allclose(negative, zero)
    with pytest.raises(TypeError, match="desirable"):
        jaxloss.kto(policy, reference, desirable.astype(np.float32))


SEQUENCE_LOSSES = [
    lambda a, b: jaxloss.bradley_terry(a, b),
    lambda a, b: jaxloss.dpo(a, b, b, a),
    lambda a, b: jaxloss.dpo(a, b, b, a, loss_type="hinge"),
    lambda a, b: jaxloss.dpo(a, b, b, a, loss_type="ipo", beta=0.5),
    lambda a, b: jaxloss.dpo(a, b, b, a, label_smoothing=0.3),
    lambda a, b: jaxloss.simpo(a, b),
    lambda a, b: jaxloss.orpo(a, b),
    lambda a, b: jaxloss.kto(a, b, jnp.arange(6) % 2 == 0, reference_point=5.0),
]


@functools.cache
def _sequence_losses_at_extremes():
    run = jax.jit(lambda a, b: [compiled.value_and_grads(fn, a, b) for fn in SEQUENCE_LOSSES])
    return jax.tree.map(np.asarray, run(EXTREMES, EXTREMES[::-1].copy()))


@pytest.mark.parametrize(
    "fn",
    SEQUENCE_LOSSES,
    ids=["bradley_terry", "dpo", "dpo_hinge", "dpo_ipo", "dpo_smoothed", "simpo", "orpo", "kto"],
)
def test_sequence_losses_are_finite_at_extreme_log_probabilities(fn):
    _assert_finite(*_sequence_losses_at_extremes()[SEQUENCE_LOSSES.index(fn)])


# ------------------------------------------------------------------------------ PPO and KL


def _tokens(seed, shape=(4, 7)):
    rng = np.random.default_rng(seed)
    logprobs = rng.uniform(-4, -0.1, size=shape)
    old = logprobs + 0.4 * rng.normal(size=shape)
    advantages = rng.normal(size=(shape[0], 1))
    mask = np.arange(shape[1]) < rng.integers(1, shape[1] + 1, size=(shape[0], 1))
    return logprobs, old, advantages, mask


@pytest.mark.parametrize("epsilon", [0.1, 0.2])
def test_ppo_clip_matches_trl_masked_mean(epsilon):
    logprobs, old, advantages, mask = _tokens(int(epsilon * 10))

    def theirs(lp):  # TRL's PPOTrainer policy loss: masked_mean(max(pg1, pg2), mask)
        ratio = torch.exp(lp - torch.tensor(old))
        adv = torch.tensor(advantages)
        losses = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - epsilon, 1 + epsilon))
        m = torch.tensor(mask, dtype=torch.float64)
        return (losses * m).sum() / m.sum()

    _assert_matches(
        lambda lp: jaxloss.ppo_clip(lp, old, advantages, epsilon=epsilon, where=mask),
        theirs,
        logprobs,
    )


def test_ppo_clip_reads_batch_advantages_per_sequence_and_refuses_the_ambiguous_shape():
    # [batch] advantages are one per sequence, as GRPO's (NumPy would pair them with the
    # positions, silently where batch == time); [time] ones keep NumPy's broadcasting.
    rng = np.random.default_rng(7)
    logprobs = rng.uniform(-3, -0.1, size=(3, 5)).astype(np.float32)
    old = (logprobs + 0.3 * rng.normal(size=(3, 5))).astype(np.float32)
    per_sequence = rng.normal(size=3).astype(np.float32)
    per_position = rng.normal(size=5).astype(np.float32)

    @jax.jit  # one compilation for both
    def run(per_sequence, per_position):
        return [
            jaxloss.ppo_clip(logprobs, old, a, reduction="none")
            for a in (per_sequence, per_position)
        ]

    by_sequence, by_position = run(per_sequence, per_position)
    expected = ref.ppo_clip(logprobs, old, per_sequence[:, None])
    np.testing.assert_allclose(by_sequence, expected, rtol=1e-6)
    np.testing.assert_allclose(by_position, ref.ppo_clip(logprobs, old, per_position), rtol=1e-6)
    square, square_old = logprobs[:, :3], old[:, :3]
    with pytest.raises(ValueError, match=r"give \(3, 1\) for one value per leading entry"):
        jax.eval_shape(lambda: jaxloss.ppo_clip(square, square_old, per_sequence))
    for explicit in (per_sequence[:, None], per_sequence[None, :]):  # no longer ambiguous
        jax.eval_shape(lambda a=explicit: jaxloss.ppo_clip(square, square_old, a))


def test_ppo_dual_clip_caps_negative_advantages():
    # ρ = e³ ≈ 20 with A = −1: the clipped loss is ρ·1 = 20; dual clip c = 3 caps it at 3.
    logp, old = np.array([3.0, 3.0], np.float32), np.zeros(2, np.float32)
    adv = np.array([-1.0, 1.0], np.float32)

    @jax.jit
    def run(logp, old, adv):
        plain = jaxloss.ppo_clip(logp, old, adv, reduction="none")
        return plain, jaxloss.ppo_clip(logp, old, adv, dual_clip=3.0, reduction="none")

    plain, capped = run(logp, old, adv)
    np.testing.assert_allclose(plain, [math.exp(3.0), -1.2], rtol=1e-6)
    np.testing.assert_allclose(capped, [3.0, -1.2], rtol=1e-6)
    np.testing.assert_allclose(capped, ref.ppo_clip(logp, old, adv, dual_clip=3.0), rtol=1e-6)


def test_ppo_clip_gradients_are_finite_at_extreme_log_ratios():
    log_ratios = np.array([-1e4, -30.0, 0.0, 30.0, 1e4], np.float32)
    logp, adv = np.meshgrid(log_ratios, np.array([-2.0, 0.0, 3.0], np.float32))
    logp, adv = logp.ravel(), adv.ravel()
    old = np.zeros_like(logp)

    # Where the loss is finite, the gradient is finite: only A < 0 with ρ = e^1e4 overflows
    # the loss itself (to +inf, the unbounded PPO objective), and dual clip caps that.
    @jax.jit
    def run(logp, old, adv):
        capped = compiled.value_and_grads(
            lambda lp: jaxloss.ppo_clip(lp, old, adv, dual_clip=3.0), logp
        )
        values = jaxloss.ppo_clip(logp, old, adv, reduction="none")
        grads = jax.grad(lambda lp: jnp.sum(jaxloss.ppo_clip(lp, old, adv, reduction="none")))(logp)
        return capped, values, grads

    capped, values, grads = jax.tree.map(np.asarray, run(logp, old, adv))
    _assert_finite(*capped)
    assert not np.any(np.isnan(values)) and not np.any(np.isnan(grads))
    overflow = (adv < 0) & (logp > 100)
    assert np.all(np.isinf(np.asarray(values)[overflow]))
    assert np.all(np.isfinite(np.asarray(values)[~overflow]))
    assert np.all(np.isfinite(np.asarray(grads)[~overflow]))


ESTIMATORS = ["k1", "k2", "k3"]


@functools.cache
def _kl_penalty_ours():
    logprobs, ref_logprobs, _, mask = _tokens(5)
    cases = [((logprobs, ref_logprobs), {"estimator": e}) for e in ESTIMATORS]
    return compiled.values_and_grads_of_cases(
        lambda lp, rp, estimator: jaxloss.kl_penalty(lp, rp, estimator=estimator, where=mask),
        cases,
    )


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_kl_penalty_matches_the_estimators(estimator):
    logprobs, ref_logprobs, _, mask = _tokens(5)

    def theirs(lp, rp):  # Schulman's estimators, masked mean over tokens
        log_ratio = lp - rp
        k = {
            "k1": log_ratio,
            "k2": 0.5 * log_ratio**2,
            "k3": torch.exp(-log_ratio) - 1 + log_ratio,
        }[estimator]
        m = torch.tensor(mask, dtype=torch.float64)
        return (k * m).sum() / m.sum()

    arrays = [np.asarray(a, np.float32) for a in (logprobs, ref_logprobs)]
    _assert_close(_kl_penalty_ours()[ESTIMATORS.index(estimator)], arrays, theirs)


def test_kl_k3_keeps_precision_for_small_differences():
    # exp(−d) − 1 + d at d = 1e-4 is 5e-9; computed naively in float32 it is lost.
    d = np.float32(1e-4)
    k3 = jax.jit(functools.partial(jaxloss.kl_penalty, estimator="k3"))(
        np.array([d]), np.zeros(1, np.float32)
    )
    assert float(k3) == pytest.approx(d**2 / 2 - d**3 / 6, rel=1e-3)


@functools.cache
def _kl_penalty_at_extremes():
    @jax.jit
    def run(logp, zeros):
        def values(lp, estimator):
            return jaxloss.kl_penalty(lp, zeros, estimator=estimator, reduction="none")

        return [
            (values(logp, e), jax.grad(lambda lp, e=e: jnp.sum(values(lp, e)))(logp))
            for e in ESTIMATORS
        ]

    logp = np.array([1e4, -1e4, 0.0, 5.0], np.float32)
    return jax.tree.map(np.asarray, run(logp, np.zeros(4, np.float32)))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_kl_penalty_extremes_are_not_nan(estimator):
    values, grads = _kl_penalty_at_extremes()[ESTIMATORS.index(estimator)]
    assert not np.any(np.isnan(values)) and not np.any(np.isnan(grads))


TOKEN_LOSSES = [
    lambda lp, old, adv, m: jaxloss.ppo_clip(lp, old, adv, where=m),
    lambda lp, old, adv, m: jaxloss.ppo_clip(lp, old, adv, dual_clip=2.0, where=m),
    lambda lp, old, adv, m: jaxloss.kl_penalty(lp, old, estimator="k3", where=m),
    lambda lp, old, adv, m: jaxloss.kl_penalty(lp, old, estimator="k2", where=m),
]


def _masked_token_inputs():
    logprobs, old, advantages, mask = _tokens(6)
    advantages = np.broadcast_to(advantages, logprobs.shape).copy()
    poisoned = logprobs.copy()
    poisoned[~mask] = np.nan
    old_poisoned = old.copy()
    old_poisoned[~mask] = -1e30
    advantages[~mask] = np.inf
    # float32, as the losses would take the float64 inputs.
    clean = [logprobs, old, np.where(mask, advantages, 0.0)]
    poisoned = [poisoned, old_poisoned, advantages]
    return [a.astype(np.float32) for a in clean], [a.astype(np.float32) for a in poisoned], mask


@functools.cache
def _token_losses_with_masked_tokens():
    @jax.jit
    def run(clean, poisoned, mask, nothing):
        return [
            (
                fn(*clean, mask),
                jax.value_and_grad(fn)(*poisoned, mask),
                jax.value_and_grad(fn)(*poisoned, nothing),
            )
            for fn in TOKEN_LOSSES
        ]

    clean, poisoned, mask = _masked_token_inputs()
    return jax.tree.map(np.asarray, run(clean, poisoned, mask, np.zeros_like(mask)))


@pytest.mark.parametrize("fn", TOKEN_LOSSES, ids=["ppo_clip", "ppo_dual_clip", "kl_k3", "kl_k2"])
def test_token_losses_ignore_anything_in_masked_tokens(fn):
    _, _, mask = _masked_token_inputs()
    clean, (value, grad), masked_out = _token_losses_with_masked_tokens()[TOKEN_LOSSES.index(fn)]
    np.testing.assert_allclose(value, clean, rtol=1e-6)
    assert np.all(np.asarray(grad)[~mask] == 0) and np.all(np.isfinite(grad))
    # An entirely masked batch: 0 with zero gradients, not NaN.
    value, grad = masked_out
    assert float(value) == 0.0 and np.all(np.asarray(grad) == 0)


# --------------------------------------------------------------------------- GRPO advantages


GRPO_SCALES = ["group", "batch", "none"]


def _grpo_rewards():
    return np.random.default_rng(7).normal(size=(3, 8)).astype(np.float32)


@functools.cache
def _grpo_advantages_ours():
    run = jax.jit(
        lambda r: [jaxloss.grpo_advantages(r, scale_rewards=scale) for scale in GRPO_SCALES]
    )
    return [np.asarray(x) for x in run(_grpo_rewards())]


@pytest.mark.parametrize("scale", GRPO_SCALES)
def test_grpo_advantages_match_trl(scale):
    rewards = _grpo_rewards()
    torch_rewards = torch.tensor(rewards, dtype=torch.float64)
    centred = torch_rewards - torch_rewards.mean(dim=1, keepdim=True)
    std = {  # TRL: torch's default (unbiased) std, per group or over the whole batch
        "group": torch_rewards.std(dim=1, keepdim=True),
        "batch": torch_rewards.std(),
        "none": None,
    }[scale]
    expected = centred if std is None else centred / (std + 1e-4)
    ours = _grpo_advantages_ours()[GRPO_SCALES.index(scale)]
    np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours, ref.grpo_advantages(rewards, scale=scale), rtol=1e-5)


def test_grpo_advantages_edge_cases():
    # A constant group, a group with one valid completion, and masked entries.
    rewards = np.array([[1.0, 1.0, 1.0, 1.0], [2.0, 5.0, -1.0, 0.0]], np.float32)
    where = np.array([[True, True, True, True], [True, False, False, False]])
    partial = np.array([[True, True, False, True]] * 2)

    @jax.jit
    def run(rewards, where, partial):
        grad = jax.grad(lambda r: jnp.sum(jaxloss.grpo_advantages(r) * r))(rewards)
        return (
            jaxloss.grpo_advantages(rewards, where=where, eps=0.0),
            jaxloss.grpo_advantages(rewards, where=partial),
            grad,
            jaxloss.grpo_advantages(rewards),
        )

    constant, out, grad, advantages = jax.tree.map(np.asarray, run(rewards, where, partial))
    np.testing.assert_array_equal(constant, 0.0)
    expected = ref.grpo_advantages(rewards[:, [0, 1, 3]])
    np.testing.assert_allclose(np.asarray(out)[:, [0, 1, 3]], expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(out)[:, 2] == 0)
    np.testing.assert_allclose(grad, advantages)  # constants only
    with pytest.raises(ValueError, match="scale"):
        jaxloss.grpo_advantages(rewards, scale_rewards="std")


# ------------------------------------------------------------------ token log-probabilities


def _lm_batch(seed=0, shape=(3, 6), vocab=11):
    rng = np.random.default_rng(seed)
    logits = (3 * rng.normal(size=(*shape, vocab))).astype(np.float32)
    tokens = rng.integers(0, vocab, size=shape).astype(np.int32)
    return logits, tokens


def test_token_logprobs_match_torch_log_softmax():
    logits, tokens = _lm_batch()
    expected = torch.log_softmax(torch.tensor(logits, dtype=torch.float64), -1)
    expected = expected.gather(-1, torch.tensor(tokens, dtype=torch.int64)[..., None])[..., 0]
    ours = jax.jit(jaxloss.token_logprobs)(logits, tokens)
    np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours, ref.token_logprobs(logits, tokens), rtol=1e-5)


@pytest.mark.parametrize("average", [False, True])
def test_sequence_logprobs_sum_or_average_the_valid_tokens(average):
    logits, tokens = _lm_batch(1)
    tokens[0, 4:] = -100  # padding ids are masked
    where = np.ones(tokens.shape, bool)
    where[1, :2] = False  # prompt tokens left out
    where[2] = False  # a sequence without answer tokens
    per_token = ref.token_logprobs(logits, np.where(tokens < 0, 0, tokens))
    valid = where & (tokens >= 0)
    total = (per_token * valid).sum(-1)
    expected = (
        np.where(valid.sum(-1) > 0, total / np.maximum(valid.sum(-1), 1), 0) if (average) else total
    )

    @jax.jit  # the value and its gradient, compiled together
    def run(x):
        def loss(x):
            return jaxloss.sequence_logprobs(x, tokens, where=where, average=average)

        return loss(x), jax.grad(lambda x: jnp.sum(loss(x)))(x)

    ours, grad = run(logits)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(grad)[2] == 0) and np.all(np.asarray(grad)[0, 4:] == 0)
    assert np.all(np.isfinite(grad))


def test_token_logprobs_take_bfloat16_logits_and_compute_in_float32():
    logits, tokens = _lm_batch(2)
    half = logits.astype(jnp.bfloat16)  # a NumPy (ml_dtypes) bfloat16 array

    @jax.jit
    def run(half, tokens):
        out = jaxloss.token_logprobs(half, tokens)
        return out, jaxloss.token_logprobs(half.astype(jnp.float32), tokens)

    out, upcast = run(half, tokens)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, upcast, rtol=1e-6)


def test_sequence_logprobs_store_no_log_softmax_copy():
    # value_and_grad of the summed log-probabilities at (4, 256, 32000): a log-softmax
    # followed by a gather keeps a [batch, time, vocab] float32 copy (125 MiB) for the
    # backward pass; the gather-and-logsumexp form keeps only the logits.
    logits = jax.ShapeDtypeStruct((4, 256, 32000), jnp.float32)
    tokens = jax.ShapeDtypeStruct((4, 256), jnp.int32)

    def naive(x, y):
        lp = jnp.take_along_axis(jax.nn.log_softmax(x), y[..., None], axis=-1)
        return jnp.sum(lp)

    def ours(x, y):
        return jnp.sum(jaxloss.sequence_logprobs(x, y))

    def temp_mib(fn):
        compiled = compile_as_users(jax.jit(jax.value_and_grad(fn)).lower(logits, tokens))
        return compiled.memory_analysis().temp_size_in_bytes / 2**20

    full_copy = 4 * 256 * 32000 * 4 / 2**20
    assert temp_mib(ours) < 0.05 * full_copy
    assert temp_mib(naive) >= full_copy  # the guard: the naive form does keep the copy


def test_token_logprobs_errors():
    logits, tokens = _lm_batch()
    with pytest.raises(ValueError, match="tokens"):
        jaxloss.token_logprobs(logits, tokens[:, :3])
    with pytest.raises(TypeError, match="tokens"):
        jaxloss.token_logprobs(logits, tokens.astype(np.float32))
    with pytest.raises(TypeError, match="logits"):
        jaxloss.sequence_logprobs(tokens[..., None], tokens)
    with pytest.raises(ValueError, match="where"):
        jaxloss.sequence_logprobs(logits, tokens, where=np.ones((3, 5), bool))


def test_dpo_from_sequence_logprobs_end_to_end():
    # The usual pipeline: answer-token masks, summed log-probabilities, then DPO.
    logits, tokens = _lm_batch(3, shape=(4, 6))
    ref_logits = logits + np.random.default_rng(4).normal(size=logits.shape).astype(np.float32)
    answer = np.arange(6) >= 2

    def loss(x):
        lp = jaxloss.sequence_logprobs(x, tokens, where=answer)
        rp = jaxloss.sequence_logprobs(ref_logits, tokens, where=answer)
        return jaxloss.dpo(lp[:2], lp[2:], rp[:2], rp[2:], beta=0.1)

    per_token = ref.token_logprobs(logits, tokens) * answer
    per_token_ref = ref.token_logprobs(ref_logits, tokens) * answer
    lp, rp = per_token.sum(-1), per_token_ref.sum(-1)
    expected = ref.dpo(lp[:2], lp[2:], rp[:2], rp[2:], beta=0.1).mean()
    value, grad = jax.jit(jax.value_and_grad(loss))(logits)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    assert np.all(np.asarray(grad)[:, :2] == 0) and np.any(np.asarray(grad)[:, 2:] != 0)


def test_domain_checks_read_numpy_and_jax_scalars_and_integer_labels():
    # Only Python numbers were checked: np.float32(0.6) gave robust DPO a negative divisor
    # 1 − 2ε (gradient ascent on the chosen answer), also in checked mode; KTO read ±1
    # labels as all desirable.
    pc, pr, rc, rr = (np.array([v], np.float32) for v in (-10.0, -12.0, -11.0, -11.0))
    for eps in (0.6, np.float32(0.6), jnp.float32(0.6)):
        with pytest.raises(ValueError, match="`label_smoothing` must lie in"):
            jaxloss.dpo(pc, pr, rc, rr, loss_type="robust", label_smoothing=eps)
    with pytest.raises(ValueError, match="`label_smoothing` must lie in"):
        jaxloss.dpo(pc, pr, rc, rr, loss_type="exo_pair", label_smoothing=np.float32(0.0))
    robust = jaxloss.checked(
        lambda eps: jaxloss.dpo(pc, pr, rc, rr, loss_type="robust", label_smoothing=eps)
    )
    with pytest.raises(JaxRuntimeError, match="label_smoothing"):
        robust(jnp.float32(0.6))
    logp, ref = np.array([-1.0, -1.0], np.float32), np.array([-3.0, -3.0], np.float32)
    with pytest.raises(ValueError, match="`desirable` must lie in"):
        jaxloss.kto(logp, ref, np.array([1, -1]))
    np.testing.assert_array_equal(
        jaxloss.kto(logp, ref, np.array([1, 0]), reduction="none"),
        jaxloss.kto(logp, ref, np.array([True, False]), reduction="none"),
    )


def test_impossible_tokens_are_accepted_in_checked_mode_and_give_the_limits():
    # −inf log-probabilities are legitimate (token_logprobs gives them for a banned token):
    # checked mode let them through only for logits. k3 = e^{−d} − 1 + d at d = −inf was
    # inf − inf = NaN; its limit is +inf. GRPO's importance-weighted k3 was NaN there; its
    # limit (token weights) is e^{ref − old}: beta · 1 here, as at a log-probability of −1e4.
    impossible = np.array([-np.inf, -1.0], np.float32)
    other = np.array([-1.0, -2.0], np.float32)
    losses = (
        lambda a, b: jaxloss.dpo(a, b, other, other),
        lambda a, b: jaxloss.simpo(a, b),
        lambda a, b: jaxloss.orpo(a, b),
        lambda a, b: jaxloss.kto(a, b, np.array([True, False])),
        lambda a, b: jaxloss.ppo_clip(a, b, np.array([1.0, -1.0], np.float32)),
        lambda a, b: jaxloss.kl_penalty(a, b, estimator="k1"),
    )

    def grpo(lp):
        return jaxloss.grpo(
            lp[None],
            other[None],
            np.float32(0.0),
            ref_logprobs=other[None],
            beta=0.5,
            kl_importance_weight=True,  # the weighted k3, whose limit is finite
            reduction="none",
        )[0]

    lps = (impossible, np.array([-1e4, -1.0], np.float32))

    @jax.jit  # one compilation for every unchecked value and gradient below
    def unchecked():
        return (
            jax.value_and_grad(
                lambda lp: jnp.sum(jaxloss.kl_penalty(lp, other, estimator="k3", reduction="none"))
            )(impossible),
            [loss(other, impossible) for loss in losses],
            [(grpo(lp), jax.grad(lambda x: jnp.sum(grpo(x)))(lp)) for lp in lps],
        )

    (value, grad), values, grpos = jax.tree.map(np.asarray, unchecked())
    assert float(value) == np.inf and grad[0] == -np.inf and np.isfinite(grad[1])
    # Checked mode: the six losses in one compiled function, grpo in another (both inputs).
    checked_values = jaxloss.checked(lambda a, b: [loss(a, b) for loss in losses])(
        other, impossible
    )
    for checked_value, expected in zip(checked_values, values, strict=True):
        np.testing.assert_array_equal(checked_value, expected)
    checked_grpo = jaxloss.checked(grpo)
    for lp, (expected, grad) in zip(lps, grpos, strict=True):
        # Token 1: w = e, k3 = e^{-1}: w · k3 = 1 as well.
        np.testing.assert_allclose(expected, [0.5, 0.5], rtol=1e-6)
        np.testing.assert_array_equal(checked_grpo(lp), expected)
        assert np.all(np.isfinite(grad))
