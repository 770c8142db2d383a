"""``dpo``'s loss types and f-divergences against TRL 1.16's ``DPOTrainer``, in torch."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.experimental import checkify

import jaxloss
from tests._suite import compiled


def trl_dpo_loss(
    pc,
    pr,
    rc,
    rr,
    *,
    loss_type,
    beta,
    label_smoothing=0.0,
    f_divergence="reverse_kl",
    alpha=0.5,
    discopop_tau=0.05,
    delta=0.0,
):
    """TRL 1.16's ``DPOTrainer._compute_loss`` from the sequence log-probabilities on, per
    pair; ``delta`` is TRL <= 0.20's running reward mean of ``"bco_pair"`` (0 in 1.16), and
    ``label_smoothing`` of ``"sigmoid"`` its cDPO (TRL 1.16 has none)."""
    chosen_logratios, rejected_logratios = pc - rc, pr - rr
    if f_divergence == "reverse_kl":
        chosen_scores, rejected_scores = chosen_logratios, rejected_logratios
    elif f_divergence == "forward_kl":
        chosen_scores = 1 - torch.exp(-chosen_logratios)
        rejected_scores = 1 - torch.exp(-rejected_logratios)
    elif f_divergence == "js_divergence":
        chosen_scores = math.log(2) + F.logsigmoid(chosen_logratios)
        rejected_scores = math.log(2) + F.logsigmoid(rejected_logratios)
    elif abs(alpha - 1.0) < 1e-6:
        chosen_scores, rejected_scores = chosen_logratios, rejected_logratios
    else:
        coef = 1.0 / (alpha - 1.0)
        chosen_scores = (
            torch.exp(torch.clamp((alpha - 1.0) * chosen_logratios, max=80)) - 1
        ) * coef
        rejected_scores = (
            torch.exp(torch.clamp((alpha - 1.0) * rejected_logratios, max=80)) - 1
        ) * coef
    delta_score = chosen_scores - rejected_scores
    eps = label_smoothing
    if loss_type == "sigmoid":
        return (
            -F.logsigmoid(beta * delta_score) * (1 - eps) - F.logsigmoid(-beta * delta_score) * eps
        )
    if loss_type == "hinge":
        return torch.relu(1 - beta * delta_score)
    if loss_type == "ipo":
        return (delta_score - 1 / (2 * beta)) ** 2
    if loss_type == "exo_pair":
        epsilon = torch.tensor(eps, dtype=pc.dtype)
        qw = torch.sigmoid(beta * delta_score)
        log_qw = F.logsigmoid(beta * delta_score)
        ql = torch.sigmoid(-beta * delta_score)
        log_ql = F.logsigmoid(-beta * delta_score)
        return qw * (log_qw - torch.log1p(-epsilon)) + ql * (log_ql - torch.log(epsilon))
    if loss_type == "nca_pair":
        chosen_rewards, rejected_rewards = beta * chosen_logratios, beta * rejected_logratios
        return (
            -F.logsigmoid(chosen_rewards)
            - 0.5 * F.logsigmoid(-chosen_rewards)
            - 0.5 * F.logsigmoid(-rejected_rewards)
        )
    if loss_type == "robust":
        clean = -(1 - eps) * F.logsigmoid(beta * delta_score)
        flipped = -eps * F.logsigmoid(-beta * delta_score)
        return (clean - flipped) / (1 - 2 * eps)
    if loss_type == "bco_pair":
        chosen_rewards, rejected_rewards = beta * chosen_logratios, beta * rejected_logratios
        return -F.logsigmoid(chosen_rewards - delta) - F.logsigmoid(-(rejected_rewards - delta))
    if loss_type == "sppo_hard":
        return (chosen_logratios - 0.5 / beta) ** 2 + (rejected_logratios + 0.5 / beta) ** 2
    if loss_type in ("aot", "aot_unpaired"):
        if loss_type == "aot":
            first, second = pc - pr, rc - rr
        else:
            first, second = chosen_logratios, rejected_logratios
        d = torch.sort(first, dim=0)[0] - torch.sort(second, dim=0)[0]
        return -F.logsigmoid(beta * d) * (1 - eps) - F.logsigmoid(-beta * d) * eps
    if loss_type == "apo_zero":
        return (1 - torch.sigmoid(beta * chosen_logratios)) + torch.sigmoid(
            beta * rejected_logratios
        )
    if loss_type == "apo_down":
        return torch.sigmoid(beta * chosen_logratios) + (
            1 - torch.sigmoid(beta * (chosen_logratios - rejected_logratios))
        )
    assert loss_type == "discopop"
    logits = delta_score * beta
    modulation = torch.sigmoid(logits / discopop_tau)
    return -F.logsigmoid(logits) * (1 - modulation) + torch.exp(-logits) * modulation


BATCH = 10
# Rows 2 and 7 are masked: they hold NaN, and must reach neither value nor gradient.
KEEP = np.array([i not in (2, 7) for i in range(BATCH)])


def _logps(seed, spread=1.0):
    """Policy and reference log-probabilities whose log-ratios are about ``spread``."""
    rng = np.random.default_rng(seed)
    ref_c, ref_r = (-30 + 8 * rng.normal(size=BATCH) for _ in range(2))
    return [
        ref_c + spread * rng.normal(size=BATCH),
        ref_r + spread * rng.normal(size=BATCH),
        ref_c,
        ref_r,
    ]


# (loss_type, options): every loss type, each f-divergence where TRL allows it.
GRID = [
    ("sigmoid", {}),
    ("sigmoid", {"label_smoothing": 0.2}),
    ("hinge", {}),
    ("ipo", {}),
    ("robust", {"label_smoothing": 0.1}),
    ("bco_pair", {}),
    ("bco_pair", {"reward_shift": 0.3}),
    ("sppo_hard", {}),
    ("nca_pair", {}),
    ("aot", {}),
    ("aot", {"label_smoothing": 0.1}),
    ("aot_unpaired", {"label_smoothing": 0.05}),
    ("apo_zero", {}),
    ("apo_down", {}),
    ("discopop", {}),
    ("discopop", {"discopop_tau": 0.5}),
    ("exo_pair", {"label_smoothing": 1e-3}),
    ("sigmoid", {"f_divergence": "forward_kl"}),
    ("sigmoid", {"f_divergence": "js_divergence"}),
    ("sigmoid", {"f_divergence": "alpha_divergence", "f_divergence_alpha": 0.5}),
    ("sigmoid", {"f_divergence": "alpha_divergence", "f_divergence_alpha": 1.0}),
    ("hinge", {"f_divergence": "alpha_divergence", "f_divergence_alpha": 2.0}),
    ("robust", {"label_smoothing": 0.2, "f_divergence": "js_divergence"}),
    ("exo_pair", {"label_smoothing": 0.1, "f_divergence": "forward_kl"}),
    ("discopop", {"f_divergence": "alpha_divergence", "f_divergence_alpha": 0.3}),
]
BETAS = [0.1, 0.7]
_TRL_NAMES = {
    "reward_shift": "delta",
    "f_divergence_alpha": "alpha",
}


def _id(entry):
    loss_type, options = entry
    return "-".join([loss_type, *(f"{k}={v}" for k, v in options.items())])


def _inputs(index):
    # Small log-ratios where an f-divergence's exponentials are taken.
    return _logps(index, spread=0.7 if "f_divergence" in GRID[index][1] else 3.0)


@functools.cache
def _ours():
    """Every grid entry, unmasked and masked (NaN in the masked rows), in one compilation."""
    cases = []
    for index, (loss_type, options) in enumerate(GRID):
        logps = _inputs(index)
        hostile = [np.where(KEEP, x, np.nan) for x in logps]
        for beta in BETAS:
            kwargs = {"loss_type": loss_type, "beta": beta, **options}
            cases.append((logps, kwargs))
            cases.append((hostile, {**kwargs, "where": KEEP}))
    return compiled.values_and_grads_of_cases(jaxloss.dpo, cases)


def _theirs(arrays, loss_type, beta, options):
    tensors = [torch.tensor(np.asarray(a, np.float32), dtype=torch.float64) for a in arrays]
    for t in tensors:
        t.requires_grad_(True)
    trl_options = {_TRL_NAMES.get(k, k): v for k, v in options.items()}
    value = trl_dpo_loss(*tensors, loss_type=loss_type, beta=beta, **trl_options).mean()
    value.backward()
    return value.item(), [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("masked", [False, True], ids=["all", "where"])
@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("entry", GRID, ids=[_id(e) for e in GRID])
def test_dpo_variant_matches_trl(entry, beta, masked):
    index = GRID.index(entry)
    loss_type, options = entry
    logps = _inputs(index)
    value, grads = _ours()[4 * index + 2 * BETAS.index(beta) + masked]
    kept = [x[KEEP] for x in logps] if masked else logps
    expected, expected_grads = _theirs(kept, loss_type, beta, options)
    np.testing.assert_allclose(value, expected, rtol=2e-5, atol=1e-6)
    for grad, theirs in zip(grads, expected_grads, strict=True):
        if masked:
            np.testing.assert_array_equal(grad[~KEEP], 0)
            grad = grad[KEEP]
        np.testing.assert_allclose(grad, theirs, rtol=1e-4, atol=1e-6)


def test_robust_is_unbiased_where_cdpo_is_the_expectation():
    # rDPO: E over a label flipped with probability ε of its loss is the clean −log σ(z);
    # cDPO ("sigmoid" with ε) is instead that expectation of the clean loss itself.
    eps = 0.2

    @jax.jit  # one compilation for every value below
    def run():
        z = jnp.linspace(-4.0, 4.0, 9)
        zeros = jnp.zeros_like(z)

        def loss(sign, loss_type):
            return jaxloss.dpo(
                sign * z,
                zeros,
                zeros,
                zeros,
                beta=1.0,
                label_smoothing=eps,
                loss_type=loss_type,
                reduction="none",
            )

        expected = jax.nn.softplus(-z)
        robust = (1 - eps) * loss(1, "robust") + eps * loss(-1, "robust")
        cdpo = loss(1, "sigmoid")
        return expected, robust, cdpo, (1 - eps) * expected + eps * jax.nn.softplus(z)

    expected, robust, cdpo, cdpo_expected = run()
    np.testing.assert_allclose(robust, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cdpo, cdpo_expected, rtol=1e-6)


HAND_WORKED = {
    "sppo_hard": ("sppo_hard", {}),
    "apo_zero": ("apo_zero", {}),
    "apo_down": ("apo_down", {}),
    "bco_pair": ("bco_pair", {"reward_shift": 1.0}),
    "discopop": ("discopop", {"discopop_tau": 1.0}),
    "js": ("sigmoid", {"f_divergence": "js_divergence"}),
}


def test_hand_worked_values():
    # u_c = 1, u_r = −1
    pc, pr, rc, rr = (np.array([v], np.float32) for v in (-10.0, -12.0, -11.0, -11.0))

    @jax.jit  # one compilation for every value below, and the sigmoids of the expectations
    def run():
        values = {
            key: jaxloss.dpo(pc, pr, rc, rr, beta=1.0, loss_type=loss_type, **options)
            for key, (loss_type, options) in HAND_WORKED.items()
        }
        return values, {x: jax.nn.sigmoid(x) for x in (1.0, -1.0, 2.0, -2.0)}

    values, sigmoids = jax.tree.map(np.asarray, run())  # float32 arithmetic below, in NumPy
    value = {key: float(v) for key, v in values.items()}
    sig = sigmoids.__getitem__
    np.testing.assert_allclose(value["sppo_hard"], 0.5**2 + 0.5**2, rtol=1e-6)
    np.testing.assert_allclose(value["apo_zero"], 1 - sig(1.0) + sig(-1.0), rtol=1e-6)
    np.testing.assert_allclose(value["apo_down"], sig(1.0) + 1 - sig(2.0), rtol=1e-6)
    # bco_pair with δ = 1: −log σ(1 − 1) − log σ(1 − (−1)).
    expected = math.log(2) + math.log1p(math.exp(-2))
    np.testing.assert_allclose(value["bco_pair"], expected, rtol=1e-6)
    # DiscoPOP with τ = 1 at z = 2: (1 − σ(2)) softplus(−2) + σ(2) e^{−2}.
    expected = sig(-2.0) * math.log1p(math.exp(-2)) + sig(2.0) * math.exp(-2)
    np.testing.assert_allclose(value["discopop"], expected, rtol=1e-6)
    # js: f'(u) = log 2 + log σ(u), so z = log σ(1) − log σ(−1) = 1.
    np.testing.assert_allclose(value["js"], math.log1p(math.exp(-1)), rtol=1e-6)


def test_aot_ranks_rows_and_masks_as_dropping():
    # Row i of "none" is the loss of its policy margin's rank; masked rows drop out of the
    # ranking; under a mapped axis the ranks are over every device.
    rng = np.random.default_rng(3)
    logps = [(-20 + 4 * rng.normal(size=8)).astype(np.float32) for _ in range(4)]
    keep = np.arange(8) % 3 != 1

    @jax.jit  # one compilation for every value below (inputs closed over, as constants)
    def run():
        margins, ref_margins = logps[0] - logps[1], logps[2] - logps[3]
        ranks = jnp.argsort(jnp.argsort(margins))
        partners = jnp.sort(ref_margins)[ranks]
        expected = jax.nn.softplus(-0.3 * (margins - partners))
        none = jaxloss.dpo(*logps, beta=0.3, loss_type="aot", reduction="none")
        masked = jaxloss.dpo(*logps, beta=0.3, loss_type="aot", where=keep, reduction="none")
        dropped = jaxloss.dpo(
            *(x[keep] for x in logps), beta=0.3, loss_type="aot", reduction="none"
        )
        sharded = jax.vmap(
            lambda *a: jaxloss.dpo(*a, beta=0.3, loss_type="aot_unpaired", axis_name="d"),
            axis_name="d",
        )(*(x.reshape(4, 2) for x in logps))
        whole = jaxloss.dpo(*logps, beta=0.3, loss_type="aot_unpaired")
        return none, expected, masked, dropped, sharded, whole

    none, expected, masked, dropped, sharded, whole = jax.tree.map(np.asarray, run())
    np.testing.assert_allclose(none, expected, rtol=1e-6)
    np.testing.assert_allclose(masked[keep], dropped, rtol=1e-6)
    np.testing.assert_array_equal(masked[~keep], 0)
    np.testing.assert_allclose(sharded, np.full(4, whole), rtol=1e-6)


EXTREMES = np.array([-1e4, -1e4, 0.0, 1e4, -3.0, 1e4], np.float32)
# Forward KL's loss is +inf where a chosen log-ratio is below ≈ −88.7 (its own e^{−u}
# overflows), as three of EXTREMES' are: it is tested with extreme rejected log-ratios alone.
FORWARD_KL_TYPES = [e for e in GRID if e[1].get("f_divergence") == "forward_kl"]
FINITE_TYPES = [e for e in GRID if e not in FORWARD_KL_TYPES]


@functools.cache
def _at_extremes():
    a, b = EXTREMES, EXTREMES[::-1].copy()
    fns = [functools.partial(jaxloss.dpo, loss_type=t, **o) for t, o in FINITE_TYPES]
    run = jax.jit(lambda a, b: [compiled.value_and_grads(fn, a, b, b, a) for fn in fns])
    return jax.tree.map(np.asarray, run(a, b))


@pytest.mark.parametrize("entry", FINITE_TYPES, ids=[_id(e) for e in FINITE_TYPES])
def test_finite_at_extreme_log_probabilities(entry):
    value, grads = _at_extremes()[FINITE_TYPES.index(entry)]
    assert np.isfinite(value), value
    for g in grads:
        assert np.all(np.isfinite(g)), g


@pytest.mark.parametrize("entry", FORWARD_KL_TYPES, ids=[_id(e) for e in FORWARD_KL_TYPES])
def test_forward_kl_finite_at_extreme_rejected_log_probabilities(entry):
    # Chosen log-ratios |a − b| ≥ 0, rejected ones a − b down to −2e4: e^{−u_r} overflows.
    # Its derivative used to be inf against the loss's slope 0 there (NaN).
    a, b = EXTREMES, EXTREMES[::-1].copy()
    fn = functools.partial(jaxloss.dpo, loss_type=entry[0], **entry[1])
    args = (np.maximum(a, b), a, np.minimum(a, b), b)
    value, grads = jax.jit(lambda *x: compiled.value_and_grads(fn, *x))(*args)
    assert np.isfinite(value), value
    for g in grads:
        assert np.all(np.isfinite(g)), g


# u_c = −5 and u_r past e^{−u_r}'s float32 range, the last an impossible rejected answer.
OVERFLOWING_LOGRATIOS = np.array([-90.0, -100.0, -1e4, -np.inf], np.float32)
FORWARD_KL_LIMITS = [
    ("sigmoid", {}, 0.0),
    ("hinge", {}, 0.0),
    ("robust", {}, 0.0),
    ("discopop", {}, 0.0),
    ("discopop", {"discopop_tau": 0.5}, 0.0),
    ("exo_pair", {"label_smoothing": 0.1}, -math.log1p(-0.1)),  # σ(z) → 1: −log(1 − ε)
]


@functools.cache
def _forward_kl_past_the_exponent_range():
    batch = len(OVERFLOWING_LOGRATIOS)
    pc, rc, rr = (np.full(batch, v, np.float32) for v in (-250.0, -245.0, -300.0))
    pr = rr + OVERFLOWING_LOGRATIOS
    cases = [
        ((pc, pr, rc, rr), {"loss_type": t, "f_divergence": "forward_kl", "beta": 0.1,
                            "reduction": "none", **o})
        for t, o, _ in FORWARD_KL_LIMITS
    ]  # fmt: skip
    return compiled.values_and_grads_of_cases(jaxloss.dpo, cases)


@pytest.mark.parametrize(
    ("loss_type", "options", "limit"),
    FORWARD_KL_LIMITS,
    ids=[_id(e[:2]) for e in FORWARD_KL_LIMITS],
)
def test_forward_kl_rejected_past_the_exponent_range_is_its_limit(loss_type, options, limit):
    # z = β (f'(u_c) − f'(u_r)) = +inf, where each loss is flat: the loss is its limit and
    # every gradient 0. The derivative e^{−u_r} of f' was inf there, times 0: NaN.
    value, grads = _forward_kl_past_the_exponent_range()[
        FORWARD_KL_LIMITS.index((loss_type, options, limit))
    ]
    np.testing.assert_allclose(value, np.full(len(OVERFLOWING_LOGRATIOS), limit), rtol=1e-6)
    for g in grads:
        np.testing.assert_array_equal(g, 0.0)


def test_forward_kl_chosen_past_the_exponent_range_is_inf_with_a_finite_slope():
    # u_c below ≈ −88.7: f'(u_c) = 1 − e^{−u_c} = −inf and the loss +inf, as before. Its
    # derivative e^{−u_c} is taken as float32's largest finite value, so the slope of
    # "sigmoid" in the policy's chosen log-probability is −β·max (it was −inf).
    batch = len(OVERFLOWING_LOGRATIOS)
    pr, rr, rc = (np.full(batch, v, np.float32) for v in (-250.0, -245.0, -300.0))
    pc = rc + OVERFLOWING_LOGRATIOS

    def loss(pc):
        return jaxloss.dpo(pc, pr, rc, rr, beta=0.1, f_divergence="forward_kl", reduction="none")

    value, (grad,) = jax.jit(lambda x: compiled.value_and_grads(loss, x))(pc)
    np.testing.assert_array_equal(value, np.inf)
    np.testing.assert_allclose(grad, -0.1 * np.finfo(np.float32).max, rtol=1e-6)


# An impossible answer (log-probability −inf) of the policy: z = −inf (chosen) or +inf
# (rejected), each loss at its limit. EXO's: KL([σ(z), σ(−z)] ‖ [1 − ε, ε]) tends to
# −log ε as σ(z) → 0 and to −log(1 − ε) as σ(z) → 1 (σ log σ → 0), flat in z; DiscoPOP's
# (1 − m)(−log σ(z)) + m e^{−z} to +inf with its softplus's slope −1 in z (for τ ≤ 1;
# m e^{−z} grows faster for τ > 1); robust's with ε = 0 (DPO's) to 0.
IMPOSSIBLE = [
    ("exo_pair", {"label_smoothing": 0.1}, "chosen", -math.log(0.1), 0.0),
    ("exo_pair", {"label_smoothing": 0.1}, "rejected", -math.log1p(-0.1), 0.0),
    ("exo_pair", {"label_smoothing": 1e-3, "f_divergence": "js_divergence"}, "chosen",
     -math.log(1e-3), 0.0),
    ("discopop", {}, "chosen", math.inf, -1.0),
    ("discopop", {"discopop_tau": 1.0}, "chosen", math.inf, -1.0),
    ("discopop", {"f_divergence": "js_divergence"}, "chosen", math.inf, -1.0),
    ("discopop", {}, "rejected", 0.0, 0.0),
    ("robust", {}, "rejected", 0.0, 0.0),
    ("robust", {"f_divergence": "js_divergence"}, "rejected", 0.0, 0.0),
]  # fmt: skip


@functools.cache
def _impossible_answers():
    cases = []
    for loss_type, options, side, _, _ in IMPOSSIBLE:
        logps = [np.full(2, v, np.float32) for v in (-10.0, -12.0, -11.0, -11.0)]
        logps[0 if side == "chosen" else 1][:] = -np.inf
        cases.append((logps, {"loss_type": loss_type, "beta": 0.1, "reduction": "none",
                              **options}))  # fmt: skip
    return compiled.values_and_grads_of_cases(jaxloss.dpo, cases)


@pytest.mark.parametrize(
    ("loss_type", "options", "side", "limit", "slope"),
    IMPOSSIBLE,
    ids=[f"{_id(e[:2])}-{e[2]}" for e in IMPOSSIBLE],
)
def test_an_impossible_answer_gives_the_limit(loss_type, options, side, limit, slope):
    # slope: dℓ/dz at the limit. The impossible answer's log-probabilities have ±β times it
    # (z = β (f'(u_c) − f'(u_r)), f'' → 1 as u → −inf for js_divergence too); the other
    # answer's, β f''(u) times it. They were NaN, as the value.
    value, grads = _impossible_answers()[IMPOSSIBLE.index((loss_type, options, side, limit, slope))]
    np.testing.assert_allclose(value, [limit, limit], rtol=1e-6)
    policy, ref = (grads[0], grads[2]) if side == "chosen" else (grads[1], grads[3])
    sign = 1 if side == "chosen" else -1
    np.testing.assert_allclose(policy, np.full(2, sign * 0.1 * slope), rtol=1e-6, atol=0)
    np.testing.assert_allclose(ref, -policy, rtol=1e-6, atol=0)
    for g in grads:
        assert np.all(np.isfinite(g)), g
        if slope == 0:
            np.testing.assert_array_equal(g, 0.0)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"loss_type": "hinge", "label_smoothing": 0.1}, "label_smoothing"),
        ({"loss_type": "robust", "label_smoothing": 0.5}, "label_smoothing"),
        ({"loss_type": "exo_pair"}, "label_smoothing"),
        ({"loss_type": "exo_pair", "label_smoothing": 1.0}, "label_smoothing"),
        ({"loss_type": "sigmoid", "reward_shift": 0.1}, "reward_shift"),
        ({"loss_type": "nca_pair", "f_divergence": "js_divergence"}, "f_divergence"),
        ({"loss_type": "ipo", "f_divergence": "forward_kl"}, "f_divergence"),
        ({"f_divergence": "kl"}, "f_divergence"),
        ({"loss_type": "discopop", "discopop_tau": 0.0}, "discopop_tau"),
        ({"loss_type": "sft"}, "loss_type"),
    ],
)
def test_rejects_bad_options(options, match):
    logps = [np.zeros(2, np.float32)] * 4
    with pytest.raises(ValueError, match=match):
        jaxloss.dpo(*logps, **options)


def test_unused_options_as_arrays_run_every_type_and_are_checked_in_checked_mode():
    # A step that carries every hyperparameter as an array (traced, so it cannot be read
    # at trace time) runs a type that does not use one: it must be 0, which checked mode
    # verifies. (It raised ValueError for any array, 0 included.)
    logps = [np.array([2.0, -1.0], np.float32), *[np.zeros(2, np.float32)] * 3]

    def step(smoothing, shift):
        return jaxloss.dpo(*logps, loss_type="ipo", label_smoothing=smoothing, reward_shift=shift)

    zero = jnp.float32(0)
    expected = jax.jit(lambda: jaxloss.dpo(*logps, loss_type="ipo"))()
    np.testing.assert_allclose(jax.jit(step)(zero, zero), expected, rtol=1e-6)
    checked = jaxloss.checked(step)  # traced: the arrays are arguments
    np.testing.assert_allclose(checked(zero, zero), expected, rtol=1e-6)
    for smoothing, shift, name in ((0.1, 0.0, "label_smoothing"), (0.0, 0.3, "reward_shift")):
        with pytest.raises(checkify.JaxRuntimeError, match=name):
            checked(jnp.float32(smoothing), jnp.float32(shift))


def test_wpo_weights_as_documented_match_trl_use_weighting():
    rng = np.random.default_rng(5)
    batch, time, vocab = 4, 6, 9
    logits = rng.normal(size=(2 * batch, time, vocab)).astype(np.float32)  # chosen, rejected
    tokens = rng.integers(0, vocab, size=(2 * batch, time))
    valid = np.arange(time) < rng.integers(1, time + 1, size=(2 * batch, 1))
    ref_logps = (-20 + 4 * rng.normal(size=2 * batch)).astype(np.float32)

    def ours(logits):
        logps = jaxloss.sequence_logprobs(logits, tokens, where=valid)
        aligned = jaxloss.token_logprobs(logits, tokens, where=valid) - jax.nn.logsumexp(
            2 * jax.nn.log_softmax(logits), axis=-1
        )
        mean = jnp.sum(jnp.where(valid, aligned, 0), -1) / jnp.maximum(valid.sum(-1), 1)
        weights = jax.lax.stop_gradient(jnp.exp(mean))
        return jaxloss.dpo(
            logps[:batch],
            logps[batch:],
            ref_logps[:batch],
            ref_logps[batch:],
            loss_type="robust",
            label_smoothing=0.1,
            weights=weights[:batch] * weights[batch:],
        )

    def theirs(logits):  # TRL 1.16: DPOTrainer._compute_loss with use_weighting=True
        mask = torch.tensor(valid, dtype=torch.float64)
        log_probs = torch.log_softmax(logits, -1)
        per_token_logps = log_probs.gather(-1, torch.tensor(tokens)[..., None])[..., 0] * mask
        logps = per_token_logps.sum(1)
        chosen_logps, rejected_logps = logps.chunk(2)
        ref_c, ref_r = torch.tensor(ref_logps, dtype=torch.float64).chunk(2)
        per_sequence_loss = trl_dpo_loss(
            chosen_logps, rejected_logps, ref_c, ref_r,
            loss_type="robust", beta=0.1, label_smoothing=0.1,
        )  # fmt: skip
        with torch.no_grad():
            log_sum_sq_probs = torch.logsumexp(2 * logits, -1) - 2 * torch.logsumexp(logits, -1)
            aligned_logps = (per_token_logps - log_sum_sq_probs) * mask
        weights = torch.exp(aligned_logps.sum(1) / mask.sum(1).clamp_min(1))
        chosen_weights, rejected_weights = weights.chunk(2)
        return (per_sequence_loss * chosen_weights * rejected_weights).mean()

    value, (grad,) = jax.jit(lambda x: compiled.value_and_grads(ours, x))(logits)
    tensor = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    expected = theirs(tensor)
    expected.backward()
    np.testing.assert_allclose(value, expected.item(), rtol=2e-5)
    np.testing.assert_allclose(grad, tensor.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_weights_are_masked_and_refused_for_aot():
    logps = [np.linspace(-3, 3, 4).astype(np.float32) * k for k in (1, -1, 0.5, 0.2)]
    weights = np.array([2.0, np.nan, 1.0, 0.5], np.float32)
    keep = ~np.isnan(weights)
    (value, grads), dropped = jax.jit(  # one compilation for both
        lambda *a: (
            compiled.value_and_grads(
                lambda *b: jaxloss.dpo(*b, weights=weights, where=keep, loss_type="nca_pair"), *a
            ),
            jaxloss.dpo(*(x[keep] for x in logps), weights=weights[keep], loss_type="nca_pair"),
        )
    )(*logps)
    np.testing.assert_allclose(value, dropped, rtol=1e-6)
    assert all(np.all(np.isfinite(g)) for g in grads)
    with pytest.raises(ValueError, match="weights"):
        jaxloss.dpo(*logps, weights=weights, loss_type="aot")


def test_ld_dpo_inputs_as_documented_match_trl_ld_alpha():
    rng = np.random.default_rng(6)
    batch, time, vocab, alpha = 3, 7, 5, 0.4
    logits = rng.normal(size=(2, 2 * batch, time, vocab)).astype(np.float32)  # policy, ref
    tokens = rng.integers(0, vocab, size=(2 * batch, time))
    starts = rng.integers(0, 2, size=(2 * batch, 1))  # completions after a prompt token
    valid = (np.arange(time) >= starts) & (
        np.arange(time) < rng.integers(3, time + 1, (2 * batch, 1))
    )

    def ld_logps(logits):
        lengths = valid.sum(-1)
        shared_length = np.tile(np.minimum(lengths[:batch], lengths[batch:]), 2)[:, None]
        shared = valid & (np.cumsum(valid, -1) <= shared_length)
        return jaxloss.sequence_logprobs(
            logits, tokens, where=shared
        ) + alpha * jaxloss.sequence_logprobs(logits, tokens, where=valid & ~shared)

    def ours(policy_logits):
        logps, ref_logps = ld_logps(policy_logits), ld_logps(logits[1])
        return jaxloss.dpo(logps[:batch], logps[batch:], ref_logps[:batch], ref_logps[batch:])

    def theirs(policy_logits):  # TRL 1.16: DPOTrainer._compute_loss with ld_alpha
        mask = torch.tensor(valid.astype(np.int64))
        comp_pos = mask.cumsum(dim=1)
        comp_lens = mask.sum(dim=1)
        chosen_lens, rejected_lens = comp_lens.chunk(2, dim=0)
        shared_lens = torch.minimum(chosen_lens, rejected_lens)
        shared_lens = torch.cat([shared_lens, shared_lens], dim=0)
        shared_mask = (comp_pos > 0) & (comp_pos <= shared_lens.unsqueeze(1))
        tail_mask = comp_pos > shared_lens.unsqueeze(1)

        def logps(x):
            per_token = torch.log_softmax(x, -1).gather(-1, torch.tensor(tokens)[..., None])[..., 0]
            per_token = per_token * mask
            return (per_token * shared_mask).sum(1) + alpha * (per_token * tail_mask).sum(1)

        (pc, pr), (rc, rr) = logps(policy_logits).chunk(2), logps(ref).chunk(2)
        return trl_dpo_loss(pc, pr, rc, rr, loss_type="sigmoid", beta=0.1).mean()

    ref = torch.tensor(logits[1], dtype=torch.float64)
    value, (grad,) = jax.jit(lambda x: compiled.value_and_grads(ours, x))(logits[0])
    tensor = torch.tensor(logits[0], dtype=torch.float64, requires_grad=True)
    expected = theirs(tensor)
    expected.backward()
    np.testing.assert_allclose(value, expected.item(), rtol=2e-5)
    np.testing.assert_allclose(grad, tensor.grad.numpy(), rtol=1e-4, atol=1e-7)
