"""Distillation losses: TRL's GKD ``generalized_jsd_loss`` and torch's ``kl_div`` in torch,
float64 NumPy, hand-worked values, β endpoints, temperature and masks."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.test_util import check_jvp, check_vjp

import jaxloss
from tests._suite import compiled
from tests.preference import cases_distillation as ref

BATCH, TOKENS, VOCAB = 3, 4, 6


def _batch(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Student and teacher logits and TRL-style labels (-100 marks padding)."""
    rng = np.random.default_rng(seed)
    student = rng.normal(size=(BATCH, TOKENS, VOCAB)).astype(np.float32)
    teacher = (2 * rng.normal(size=(BATCH, TOKENS, VOCAB))).astype(np.float32)
    labels = rng.integers(0, VOCAB, size=(BATCH, TOKENS))
    labels[0, 2:] = -100
    labels[2, 0] = -100
    return student, teacher, labels


def trl_generalized_jsd_loss(
    student_logits, teacher_logits, labels=None, beta=0.5, temperature=1.0, reduction="batchmean"
):
    """TRL 1.16's ``GKDTrainer.generalized_jsd_loss`` (trl/experimental/gkd), as published."""
    student_logits = student_logits / temperature
    teacher_logits = teacher_logits / temperature
    student_log_probs = F.log_softmax(student_logits, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits, dim=-1)
    if beta == 0:
        jsd = F.kl_div(student_log_probs, teacher_log_probs, reduction="none", log_target=True)
    elif beta == 1:
        jsd = F.kl_div(teacher_log_probs, student_log_probs, reduction="none", log_target=True)
    else:
        beta = torch.tensor(beta, dtype=student_log_probs.dtype)
        mixture_log_probs = torch.logsumexp(
            torch.stack(
                [student_log_probs + torch.log1p(-beta), teacher_log_probs + torch.log(beta)]
            ),
            dim=0,
        )
        kl_teacher = F.kl_div(
            mixture_log_probs, teacher_log_probs, reduction="none", log_target=True
        )
        kl_student = F.kl_div(
            mixture_log_probs, student_log_probs, reduction="none", log_target=True
        )
        jsd = beta * kl_teacher + (1 - beta) * kl_student
    if labels is not None:
        mask = labels != -100
        jsd = jsd[mask]
    if reduction == "batchmean":
        denom = mask.sum().clamp_min(1) if labels is not None else max(jsd.size(0), 1)
        return jsd.sum() / denom
    if reduction == "sum":
        return jsd.sum()
    if reduction == "mean":
        return jsd.mean()
    return jsd


def _torch_value_and_grads(fn, *arrays):
    tensors = [torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in arrays]
    value = fn(*tensors)
    value.backward()
    return value.item(), [t.grad.numpy() for t in tensors]


def _assert_close(ours, theirs, rtol=1e-5, atol=1e-6):
    (value, grads), (expected, expected_grads) = ours, theirs
    np.testing.assert_allclose(value, expected, rtol=rtol, atol=atol)
    for g, e in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------- generalized JSD

BETAS = [0.0, 0.1, 0.5, 0.9, 1.0]
TEMPERATURES = [1.0, 2.0]
JSD_GRID = [(beta, temperature) for beta in BETAS for temperature in TEMPERATURES]


@functools.cache
def _jsd_ours():
    student, teacher, labels = _batch(0)
    cases = [
        ((student, teacher), {"beta": beta, "temperature": t, "where": labels != -100})
        for beta, t in JSD_GRID
    ]
    return compiled.values_and_grads_of_cases(jaxloss.generalized_jsd, cases)


@pytest.mark.parametrize("beta, temperature", JSD_GRID)
def test_generalized_jsd_matches_trl_and_the_float64_reference(beta, temperature):
    student, teacher, labels = _batch(0)
    ours = _jsd_ours()[JSD_GRID.index((beta, temperature))]
    torch_labels = torch.tensor(labels)

    def theirs(s, t):
        return trl_generalized_jsd_loss(s, t, torch_labels, beta=beta, temperature=temperature)

    _assert_close(ours, _torch_value_and_grads(theirs, student, teacher))
    per_token = ref.generalized_jsd(student, teacher, beta=beta, temperature=temperature)
    np.testing.assert_allclose(ours[0], per_token[labels != -100].mean(), rtol=1e-5)


def test_generalized_jsd_reductions_against_trl():
    # TRL's "batchmean" without labels divides by the batch size, its "mean" by every element
    # (vocabulary included): our "sum" / batch and "mean" / vocab.
    student, teacher, _ = _batch(1)
    s, t = torch.tensor(student, dtype=torch.float64), torch.tensor(teacher, dtype=torch.float64)
    ours = jax.jit(  # one compilation for the three reductions
        lambda: {
            r: jaxloss.generalized_jsd(student, teacher, reduction=r)
            for r in ("mean", "sum", "none")
        }
    )()
    ours = jax.tree.map(np.asarray, ours)  # divided below: in NumPy, no compilation
    batchmean = trl_generalized_jsd_loss(s, t).item()
    mean = trl_generalized_jsd_loss(s, t, reduction="mean").item()
    np.testing.assert_allclose(ours["sum"] / BATCH, batchmean, rtol=1e-5)
    np.testing.assert_allclose(ours["mean"] / VOCAB, mean, rtol=1e-5)
    none = trl_generalized_jsd_loss(s, t, reduction="none").sum(-1).numpy()
    np.testing.assert_allclose(ours["none"], none, rtol=1e-5, atol=1e-7)


def test_generalized_jsd_endpoints_are_the_two_kls_even_when_traced():
    student, teacher, _ = _batch(2)
    jsd = jax.jit(
        lambda s, t, beta: jaxloss.generalized_jsd(s, t, beta=beta, reduction="none"),
    )
    endpoints = ((0.0, "forward"), (1.0, "reverse"))

    @jax.jit  # the static (Python) β, closed over, in one compilation
    def static_betas():
        return (
            [
                (
                    jaxloss.distill_kl(student, teacher, direction=direction, reduction="none"),
                    jaxloss.generalized_jsd(student, teacher, beta=beta, reduction="none"),
                )
                for beta, direction in endpoints
            ],
            jaxloss.generalized_jsd(student, teacher, beta=1e-6),
        )

    statics, near_0 = static_betas()
    for (beta, _), (expected, static) in zip(endpoints, statics, strict=True):
        np.testing.assert_allclose(jsd(student, teacher, beta), expected, rtol=1e-6)
        np.testing.assert_allclose(static, expected, rtol=1e-6)
    # The formula itself tends to 0 at the endpoints, which TRL (and we) define apart.
    assert float(near_0) < 1e-5


def _hand_worked_pair():
    """log [0.5, 0.5] and log [0.9, 0.1], the hand-worked tests' student and teacher (called
    inside their jitted functions)."""
    return jnp.log(np.array([0.5, 0.5], np.float32)), jnp.log(np.array([0.9, 0.1], np.float32))


def test_generalized_jsd_hand_worked():
    # Disjoint supports: the symmetric JSD reaches its bound log 2 where both KLs are infinite.
    left = np.array([0.0, -np.inf], np.float32)
    right = np.array([-np.inf, 0.0], np.float32)

    @jax.jit  # one compilation for every value below
    def run():
        student, teacher = _hand_worked_pair()
        return (
            jaxloss.generalized_jsd(student, teacher),
            jax.value_and_grad(jaxloss.generalized_jsd, (0, 1))(left, right),
            jaxloss.distill_kl(left, right),
        )

    jsd, (value, grads), kl = run()
    # m = (0.7, 0.3): ½ (0.9 log(9/7) + 0.1 log(1/3)) + ½ (0.5 log(5/7) + 0.5 log(5/3)).
    expected = 0.5 * (0.9 * math.log(9 / 7) + 0.1 * math.log(1 / 3)) + 0.5 * (
        0.5 * math.log(5 / 7) + 0.5 * math.log(5 / 3)
    )
    np.testing.assert_allclose(jsd, expected, rtol=1e-6)
    np.testing.assert_allclose(value, math.log(2), rtol=1e-6)
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert float(kl) == math.inf


# ------------------------------------------------------------------------- forward / reverse KL

KL_GRID = [
    (direction, t, scaled)
    for direction in ("forward", "reverse")
    for t in (1.0, 2.5)
    for scaled in (False, True)
]


@functools.cache
def _kl_ours():
    student, teacher, labels = _batch(3)
    cases = [
        (
            (student, teacher),
            {
                "direction": direction,
                "temperature": t,
                "scale_by_temperature_squared": scaled,
                "where": labels != -100,
            },
        )
        for direction, t, scaled in KL_GRID
    ]
    return compiled.values_and_grads_of_cases(jaxloss.distill_kl, cases)


@pytest.mark.parametrize("direction, temperature, scaled", KL_GRID)
def test_distill_kl_matches_torch_kl_div(direction, temperature, scaled):
    student, teacher, labels = _batch(3)
    ours = _kl_ours()[KL_GRID.index((direction, temperature, scaled))]
    mask = torch.tensor(labels != -100)

    def theirs(s, t):  # torch's knowledge-distillation recipe, per token then a masked mean
        log_q = F.log_softmax(s / temperature, dim=-1)
        log_p = F.log_softmax(t / temperature, dim=-1)
        inputs, targets = (log_q, log_p) if direction == "forward" else (log_p, log_q)
        per_token = F.kl_div(inputs, targets, reduction="none", log_target=True).sum(-1)
        loss = per_token[mask].mean()
        return loss * temperature**2 if scaled else loss

    _assert_close(ours, _torch_value_and_grads(theirs, student, teacher))
    per_token = ref.distill_kl(student, teacher, direction, temperature, scaled)
    np.testing.assert_allclose(ours[0], per_token[labels != -100].mean(), rtol=1e-5)


def test_distill_kl_hand_worked_and_temperature():
    @jax.jit  # one compilation for every value below
    def run():
        student, teacher = _hand_worked_pair()
        return (
            jaxloss.distill_kl(student, teacher),
            jaxloss.distill_kl(student, teacher, direction="reverse"),
            jaxloss.distill_kl(student, teacher, temperature=2.0),
            jaxloss.distill_kl(
                student, teacher, temperature=2.0, scale_by_temperature_squared=True
            ),
        )

    forward_value, reverse_value, soft_value, scaled_value = run()
    forward = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    reverse = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    np.testing.assert_allclose(forward_value, forward, rtol=1e-6)
    np.testing.assert_allclose(reverse_value, reverse, rtol=1e-6)
    # Temperature divides the logits; with T = 2 the teacher (0.9, 0.1) softens to (3, 1) / 4.
    soft = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    np.testing.assert_allclose(soft_value, soft, rtol=1e-6)
    np.testing.assert_allclose(scaled_value, 4 * soft, rtol=1e-6)


# ------------------------------------------------------------------------- masks and numerics


@pytest.mark.parametrize(
    "loss",
    [
        functools.partial(jaxloss.distill_kl, direction="forward"),
        functools.partial(jaxloss.distill_kl, direction="reverse"),
        functools.partial(jaxloss.generalized_jsd, beta=0.3),
    ],
    ids=["forward", "reverse", "jsd"],
)
def test_vocabulary_entries_ruled_out_by_both_count_as_absent(loss):
    # Both models give entries 0 and 3 probability 0 (−inf logits, e.g. a constrained
    # vocabulary): the loss equals the one on the other entries, with finite gradients;
    # TRL's kl_div computes 0 · (−inf) there and returns NaN.
    student, teacher, _ = _batch(4)
    ruled_out = np.zeros(VOCAB, bool)
    ruled_out[[0, 3]] = True
    s, t = np.where(ruled_out, -np.inf, student), np.where(ruled_out, -np.inf, teacher)
    (value, grads), expected = jax.jit(  # one compilation for both
        lambda: (
            jax.value_and_grad(loss, (0, 1))(s, t),
            loss(student[..., ~ruled_out], teacher[..., ~ruled_out]),
        )
    )()
    grads = [np.asarray(g) for g in grads]  # indexed below: in NumPy, no compilation
    np.testing.assert_allclose(value, expected)
    for g in grads:
        assert np.all(np.isfinite(g)) and np.all(g[..., ruled_out] == 0)
    trl = trl_generalized_jsd_loss(torch.tensor(s), torch.tensor(t), beta=0.3)
    assert torch.isnan(trl)


def test_teacher_zeros_are_free_in_forward_kl_and_in_jsd_at_any_beta():
    # Only the teacher rules entry 1 out: forward KL and JSD stay finite with finite
    # gradients, even with a traced β at an endpoint (whose other KL is +inf).
    student = np.array([0.3, 1.0, 2.0], np.float32)
    teacher = np.array([0.0, -np.inf, 1.0], np.float32)
    expected = ref.distill_kl(student, teacher)
    betas = (jnp.asarray(0.0), jnp.asarray(0.4))  # arrays (the general path), closed over
    losses = (
        jaxloss.distill_kl,
        lambda s, t: jaxloss.generalized_jsd(s, t, beta=betas[0]),
        lambda s, t: jaxloss.generalized_jsd(s, t, beta=betas[1]),
    )

    @jax.jit  # one compilation for every value and gradient below
    def run():
        return (
            [jax.value_and_grad(loss, (0, 1))(student, teacher) for loss in losses],
            jaxloss.distill_kl(student, teacher),
            jaxloss.distill_kl(student, teacher, direction="reverse"),
        )

    values_and_grads, forward, reverse = run()
    for value, grads in values_and_grads:
        assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads)
    np.testing.assert_allclose(forward, expected, rtol=1e-6)
    assert float(reverse) == math.inf


def test_mass_that_underflows_facing_a_ruled_out_entry_is_still_infinite_kl():
    # The teacher gives entry 2 probability e^-100 / 2 (0 in float32 once flushed), the
    # student rules it out: KL(p ‖ q) is +inf as with any mass there (it was 0 · inf = NaN),
    # and the student's gradient stays q - p (finite), as when the mass does not underflow.
    student = np.array([[0.0, 0.0, -np.inf]], np.float32)
    h = np.ones((1, 1), np.float32)
    zero = jnp.asarray(0.0)  # an array β or α (the general path), closed over below
    forward_kls = [
        jaxloss.distill_kl,
        functools.partial(jaxloss.generalized_jsd, beta=0.0),
        lambda s, t: jaxloss.generalized_jsd(s, t, beta=zero),
        functools.partial(jaxloss.skew_kl, alpha=0.0),
        lambda s, t: jaxloss.skew_kl(s, t, alpha=zero),
        lambda s, t: jaxloss.distill_kl(t, s, direction="reverse"),
    ]
    betas = (0.0, zero)  # the fused head: the -inf from a bias

    @jax.jit  # one compilation for every value and gradient below
    def run():
        out = {}
        for teacher_logit in (0.0, -100.0):
            teacher = np.array([[0.0, 0.0, teacher_logit]], np.float32)
            out[teacher_logit] = (
                [jax.value_and_grad(loss)(student, teacher) for loss in forward_kls],
                jax.nn.softmax(teacher),
                jax.nn.softmax(student),
                [
                    jax.value_and_grad(
                        lambda w_s, t=teacher, beta=beta: jaxloss.linear_distill(
                            h,
                            w_s,
                            h,
                            t.T,
                            beta=beta,
                            student_bias=np.array([0.0, 0.0, -np.inf], np.float32),
                        )
                    )(np.zeros((3, 1), np.float32))
                    for beta in betas
                ],
            )
        return out

    for teacher_logit, (kls, p, q, fused) in run().items():
        for loss, (value, grad) in zip(forward_kls, kls, strict=True):
            assert float(value) == math.inf, (teacher_logit, loss)
            np.testing.assert_allclose(grad, np.asarray(q) - np.asarray(p), atol=1e-7)
        for beta, (value, grad) in zip(betas, fused, strict=True):
            assert float(value) == math.inf, (teacher_logit, beta)
            assert np.all(np.isfinite(grad))


@pytest.mark.parametrize(
    "loss",
    [jaxloss.distill_kl, functools.partial(jaxloss.generalized_jsd, beta=0.7)],
    ids=["distill_kl", "generalized_jsd"],
)
def test_masked_tokens_may_hold_anything(loss):
    student, teacher, labels = _batch(5)
    keep = labels != -100
    hostile_s = np.where(keep[..., None], student, np.nan).astype(np.float32)
    hostile_t = np.where(keep[..., None], teacher, -np.inf).astype(np.float32)
    (value, grads), expected = jax.jit(  # one compilation for both
        lambda: (
            jax.value_and_grad(lambda s, t: loss(s, t, where=keep), (0, 1))(hostile_s, hostile_t),
            loss(student[keep], teacher[keep]),
        )
    )()
    grads = [np.asarray(g) for g in grads]  # indexed below: in NumPy, no compilation
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    for g in grads:
        assert np.all(g[~keep] == 0) and np.all(np.isfinite(g))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize(
    "loss",
    [
        functools.partial(jaxloss.distill_kl, direction="reverse", temperature=2.0),
        functools.partial(jaxloss.generalized_jsd, beta=0.3),
    ],
    ids=["distill_kl", "generalized_jsd"],
)
def test_token_means_are_global_over_8_devices(loss, reduction):
    # Sequences of different lengths, device d holding d fully padded ones: the mean is over
    # the valid tokens of every device (a mean of per-device means is not).
    devices, rows = 8, 2
    rng = np.random.default_rng(8)
    shape = (devices * rows, TOKENS, VOCAB)
    student = rng.normal(size=shape).astype(np.float32)
    teacher = (2 * rng.normal(size=shape)).astype(np.float32)
    lengths = rng.integers(1, TOKENS + 1, size=(devices, rows))
    for device in range(devices):
        lengths[device, :device] = 0
    keep = np.arange(TOKENS) < lengths.reshape(-1, 1)
    mesh = jax.make_mesh((devices,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    P = jax.sharding.PartitionSpec
    sharded = jax.shard_map(
        lambda s, t, w: loss(s, t, where=w, reduction=reduction, axis_name="batch"),
        mesh=mesh,
        in_specs=(P("batch"),) * 3,
        out_specs=P(),
    )
    value, grads = jax.jit(jax.value_and_grad(sharded, (0, 1)))(student, teacher, keep)
    whole = jax.jit(
        jax.value_and_grad(lambda s, t: loss(s, t, where=keep, reduction=reduction), (0, 1))
    )
    expected, expected_grads = whole(student, teacher)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    for g, e in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


SECOND_ORDER = {  # the loss and its vocabulary size
    "distill_kl[forward]": (jaxloss.distill_kl, VOCAB),
    "distill_kl[reverse]": (functools.partial(jaxloss.distill_kl, direction="reverse"), VOCAB),
    "generalized_jsd[beta=0]": (functools.partial(jaxloss.generalized_jsd, beta=0.0), VOCAB),
    "generalized_jsd[beta=0.5]": (functools.partial(jaxloss.generalized_jsd, beta=0.5), VOCAB),
    "generalized_jsd[beta=1]": (functools.partial(jaxloss.generalized_jsd, beta=1.0), VOCAB),
    "skew_kl[alpha=0]": (functools.partial(jaxloss.skew_kl, alpha=0.0), VOCAB),
    "skew_kl[alpha=0.3]": (functools.partial(jaxloss.skew_kl, alpha=0.3), VOCAB),
    "generalized_jsd[beta=0.5,vocab=37]": (
        functools.partial(jaxloss.generalized_jsd, beta=0.5),
        37,
    ),
}


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_second_derivatives_match_finite_differences(name):
    # The README's "jvp (so Hessians)": check_grads' second order in both modes, the JVP
    # and the VJP of the gradient in each logits (the other held constant) against finite
    # differences of the gradient in float64, all from one compiled function (as the common
    # suite's test_check_grads). Differentiated in the KL's second distribution (the
    # student's forward, so β = 0 and α = 0; the teacher's reverse, so β = 1), the
    # divergence kernels raised a TypeError: _numerics.row_sums' lax.reduce, whose own
    # derivative rule fails on the symbolic-zero tangent of an operand that depends only
    # on the first distribution; at a vocabulary it sums by TwoSum (a prime past 32), on
    # its zero error terms, in either logits.
    loss, vocab = SECOND_ORDER[name]
    with jax.enable_x64(True):
        rng = np.random.default_rng(8)
        logits = [rng.normal(size=(2, 3, vocab)), 2 * rng.normal(size=(2, 3, vocab))]

        @jax.jit
        def derivatives(logits, tangents, cotangents):
            out = []
            for argnum in range(2):

                def gradient(x, argnum=argnum):
                    return jax.grad(loss, argnum)(
                        *(x if i == argnum else a for i, a in enumerate(logits))
                    )

                x = logits[argnum]
                value, jvp = jax.jvp(gradient, (x,), (tangents[argnum],))
                out.append((value, jvp, jax.vjp(gradient, x)[1](cotangents[argnum])[0]))
            return out

        for argnum, label in enumerate(("student", "teacher")):

            def run(x, tangent=None, cotangent=None, argnum=argnum):
                # NumPy in, always (one compiled signature); zero directions unless given.
                zero = np.zeros_like(x)
                directions = [[zero, zero], [zero, zero]]
                for direction, given in zip(directions, (tangent, cotangent), strict=True):
                    direction[argnum] = zero if given is None else np.asarray(given)
                args = [np.asarray(x) if i == argnum else a for i, a in enumerate(logits)]
                return derivatives(args, *directions)[argnum]

            def gradient(x, run=run):
                return run(x)[0]

            def jvp(primals, tangents, run=run):
                return run(primals[0], tangents[0])[:2]

            def vjp(x, run=run):
                return run(x)[0], lambda cotangent: (run(x, cotangent=cotangent)[2],)

            check_jvp(gradient, jvp, (logits[argnum],), eps=1e-6, err_msg=f"JVP in the {label}")
            check_vjp(gradient, vjp, (logits[argnum],), eps=1e-6, err_msg=f"VJP in the {label}")


def test_half_precision_in_float32_out():
    student, teacher, _ = _batch(6)
    student, teacher = student.astype(jnp.bfloat16), teacher.astype(jnp.float16)  # NumPy
    values = jax.jit(  # one compilation for both
        lambda: [loss(student, teacher) for loss in (jaxloss.distill_kl, jaxloss.generalized_jsd)]
    )()
    for value in values:
        assert value.dtype == jnp.float32


def test_bad_options_raise():
    student, teacher, _ = _batch(7)
    with pytest.raises(ValueError, match="direction"):
        jaxloss.distill_kl(student, teacher, direction="symmetric")
    with pytest.raises(ValueError, match="beta"):
        jaxloss.generalized_jsd(student, teacher, beta=-0.1)
    with pytest.raises(ValueError, match="temperature"):
        jaxloss.distill_kl(student, teacher, temperature=0.0)
    with pytest.raises(ValueError, match="equal shapes"):
        jaxloss.generalized_jsd(student, teacher[..., :-1])
    with pytest.raises(TypeError, match="student_logits"):
        jaxloss.distill_kl(student.astype(np.int32), teacher)
    with pytest.raises(ValueError, match="where"):
        jaxloss.distill_kl(student, teacher, where=np.ones((BATCH, TOKENS, VOCAB), bool))


def test_the_temperature_gradient_skips_ruled_out_entries():
    # A −inf logit is −inf at every temperature: the loss and its temperature gradient are
    # those without that entry (its slope 0 times −inf was NaN; the row kernels share the
    # rule, `_kernels/row_kl._logit_tangent`).
    rng = np.random.default_rng(4)
    student, teacher = rng.normal(size=(2, 3, 5)).astype(np.float32)
    student[:, 4], teacher[:, 4] = -np.inf, -np.inf
    losses = {
        "forward": lambda s, t, tau: jaxloss.distill_kl(s, t, temperature=tau),
        "jsd": lambda s, t, tau: jaxloss.generalized_jsd(s, t, temperature=tau),
        "tvd": lambda s, t, tau: jaxloss.tvd(s, t, temperature=tau),
    }

    @jax.jit
    def both(s, t, tau):
        return {
            name: (
                jax.value_and_grad(loss, argnums=2)(s, t, tau),
                jax.value_and_grad(loss, argnums=2)(s[:, :4], t[:, :4], tau),
            )
            for name, loss in losses.items()
        }

    for name, (with_entry, without) in both(student, teacher, np.float32(2.0)).items():
        np.testing.assert_allclose(with_entry, without, rtol=1e-6, err_msg=name)
        assert np.isfinite(with_entry[1]) and with_entry[1] != 0, name
