"""Pairs, triplets and contrastive losses: torch parity, the papers' formulas, mining."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from jax.test_util import check_grads

import jaxloss
from tests._suite import compiled
from tests._suite.compiled import compile_as_users
from tests.pairwise import reference as ref

# Every JAX computation of a test runs in one compiled function (eager dispatch would compile
# each operation on its own); parametrized cases that share their input shapes are computed
# together, once, by a cached function, and each case checks its own part.


def _torch_grads(fn, *arrays):
    """torch's value and gradients (float64) of ``fn(*tensors).sum()``."""
    tensors = [torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in arrays]
    value = fn(*tensors)
    value.sum().backward()
    return value.detach().numpy(), [t.grad.numpy() for t in tensors]


def _assert_matches_torch(ours, theirs, rtol=1e-5, atol=1e-6):
    (value, grads), (expected, expected_grads) = ours, theirs
    np.testing.assert_allclose(value, expected, rtol=rtol, atol=atol)
    for g, e in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


TRIPLET_GRID = list(
    itertools.product([1.0, 2.0, 3.0, 0.5, float("inf")], [False, True], ["mean", "sum", "none"])
)


def _triplet_case(index):
    p, swap, reduction = TRIPLET_GRID[index]
    rng = np.random.default_rng(index)
    arrays = [rng.normal(size=(12, 5)) for _ in range(3)]
    return arrays, {"margin": 1.3, "p": p, "eps": 1e-3, "swap": swap, "reduction": reduction}


@functools.cache
def _triplet_grid_ours():
    cases = [_triplet_case(index) for index in range(len(TRIPLET_GRID))]
    return compiled.values_and_grads_of_cases(jaxloss.triplet_margin, cases)


@pytest.mark.parametrize(
    "p, swap, reduction", TRIPLET_GRID, ids=[f"p{p}-swap{s}-{r}" for p, s, r in TRIPLET_GRID]
)
def test_triplet_margin_matches_torch(p, swap, reduction):
    index = TRIPLET_GRID.index((p, swap, reduction))
    arrays, options = _triplet_case(index)
    theirs = _torch_grads(lambda *t: F.triplet_margin_loss(*t, **options), *arrays)
    _assert_matches_torch(_triplet_grid_ours()[index], theirs)


def test_triplet_margin_odd_p_uses_the_absolute_difference():
    # optax's triplet loss drops the absolute value: with p = 1 these give 10.0 there (below).
    anchor, positive, negative = np.zeros((1, 2)), np.array([[-3.0, -4.0]]), np.ones((1, 2))
    ours = jax.jit(functools.partial(jaxloss.triplet_margin, p=1.0, eps=0.0))(
        *(x.astype(np.float32) for x in (anchor, positive, negative))
    )
    theirs = F.triplet_margin_loss(
        torch.zeros(1, 2), torch.tensor([[-3.0, -4.0]]), torch.ones(1, 2), p=1.0, eps=0.0
    )
    np.testing.assert_allclose(ours, theirs.item(), rtol=1e-6)
    np.testing.assert_allclose(ours, 7 - 2 + 1)


TRIPLET_PS = [0.5, 1.0, 2.0, 3.0, float("inf")]


@functools.cache
def _triplet_gradients_at_zero_difference():
    @jax.jit
    def run(anchor):
        return [
            jax.grad(
                lambda a, pos, p=p: jaxloss.triplet_margin(
                    a, pos, a + 5.0, p=p, eps=0.0, margin=20.0
                ),
                argnums=(0, 1),
            )(anchor, anchor)
            for p in TRIPLET_PS
        ]

    return jax.tree.map(np.asarray, run(np.array([[1.0, 2.0, 3.0]], np.float32)))


@pytest.mark.parametrize("p", TRIPLET_PS)
def test_triplet_margin_gradients_are_finite_at_zero_difference(p):
    grads = _triplet_gradients_at_zero_difference()[TRIPLET_PS.index(p)]
    for g in grads:
        assert np.all(np.isfinite(g))


def test_triplet_margin_squared_is_facenet():
    rng = np.random.default_rng(1)
    a, pos, neg = (rng.normal(size=(7, 3)).astype(np.float32) for _ in range(3))
    expected = np.maximum(
        ((a - pos) ** 2).sum(1).astype(np.float64) - ((a - neg) ** 2).sum(1) + 0.5, 0
    )
    ours = jax.jit(
        functools.partial(jaxloss.triplet_margin, margin=0.5, squared=True, reduction="none")
    )
    np.testing.assert_allclose(ours(a, pos, neg), expected, rtol=1e-5, atol=1e-6)


REDUCTIONS = ["mean", "sum", "none"]
MARGIN_RANKING_GRID = list(itertools.product([0.0, 0.4], REDUCTIONS))


def _margin_ranking_inputs():
    rng = np.random.default_rng(2)
    x1, x2 = rng.normal(size=10), rng.normal(size=10)
    y = rng.choice([-1.0, 1.0], size=10)
    x2[0] = x1[0]  # a tie: torch's clamp passes the gradient at exactly 0
    return x1, x2, y


@functools.cache
def _margin_ranking_ours():
    x1, x2, y = _margin_ranking_inputs()
    cases = [((x1, x2), {"margin": m, "reduction": r}) for m, r in MARGIN_RANKING_GRID]
    return compiled.values_and_grads_of_cases(
        lambda a, b, **o: jaxloss.margin_ranking(a, b, y, **o), cases
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.4])
def test_margin_ranking_matches_torch(reduction, margin):
    x1, x2, y = _margin_ranking_inputs()
    options = {"margin": margin, "reduction": reduction}
    theirs = _torch_grads(
        lambda a, b: F.margin_ranking_loss(a, b, torch.tensor(y), **options), x1, x2
    )
    ours = _margin_ranking_ours()[MARGIN_RANKING_GRID.index((margin, reduction))]
    _assert_matches_torch(ours, theirs)


COSINE_GRID = list(itertools.product([-0.3, 0.0, 0.5], REDUCTIONS))


def _cosine_inputs():
    rng = np.random.default_rng(3)
    x1, x2 = rng.normal(size=(9, 4)), rng.normal(size=(9, 4))
    x1[0] = 0.0  # a zero vector: cos = 0 with finite gradients
    y = rng.choice([-1, 1], size=9)
    return x1, x2, y


@functools.cache
def _cosine_embedding_ours():
    x1, x2, y = _cosine_inputs()
    cases = [((x1, x2), {"margin": m, "reduction": r}) for m, r in COSINE_GRID]
    return compiled.values_and_grads_of_cases(
        lambda a, b, **o: jaxloss.cosine_embedding(a, b, y, **o), cases
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [-0.3, 0.0, 0.5])
def test_cosine_embedding_matches_torch(reduction, margin):
    x1, x2, y = _cosine_inputs()
    options = {"margin": margin, "reduction": reduction}
    theirs = _torch_grads(
        lambda a, b: F.cosine_embedding_loss(a, b, torch.tensor(y), **options), x1, x2
    )
    ours = _cosine_embedding_ours()[COSINE_GRID.index((margin, reduction))]
    _assert_matches_torch(ours, theirs)


def test_cosine_embedding_other_targets_cost_nothing():
    x = np.ones((3, 2), np.float32)
    y = np.array([0, 2, -2])
    ours = jax.jit(functools.partial(jaxloss.cosine_embedding, reduction="none"))(x, -x, y)
    np.testing.assert_array_equal(ours, 0)
    np.testing.assert_allclose(ref.cosine_embedding(x, -x, y), 0)


def test_contrastive_refuses_plus_minus_one_targets():
    # cosine_embedding's ±1: a -1 made a dissimilar pair's loss -d²/2 + push, unbounded below
    # (a loss of -12.5 here). Concrete: at the call; traced: in checked mode. Masked entries
    # are not read.
    from jax.experimental import checkify

    x1, x2 = np.zeros((2, 2), np.float32), np.array([[0.6, 0.8], [3.0, 4.0]], np.float32)
    signs = np.array([1.0, -1.0], np.float32)
    with pytest.raises(ValueError, match=r"`similar` must lie in \[0, 1\]"):
        jaxloss.contrastive(x1, x2, signs)
    with pytest.raises(checkify.JaxRuntimeError, match="`similar` must lie in"):
        jaxloss.checked(jaxloss.contrastive)(x1, x2, signs)
    assert float(jaxloss.contrastive(x1, x2, signs, where=np.array([True, False]))) == 0.5


def test_margin_ranking_refuses_boolean_targets():
    # False read as 0: each such pair cost `margin` with no gradient (torch raises too).
    with pytest.raises(TypeError, match="`targets` must be 1 or -1"):
        jaxloss.margin_ranking(np.zeros(3), np.ones(3), np.array([True, False, True]))


def test_contrastive_matches_the_paper():
    rng = np.random.default_rng(4)
    x1, x2 = rng.normal(size=(20, 6)), rng.normal(size=(20, 6))
    x2[:3] = x1[:3]  # zero distances, similar and dissimilar
    similar = (rng.uniform(size=20) < 0.5).astype(np.float32)
    similar[:2] = [1.0, 0.0]
    margins = (0.5, 3.0)

    @jax.jit  # both margins' values and the gradients, compiled together
    def run(a, b):
        values = [
            jaxloss.contrastive(a, b, similar, margin=margin, reduction="none")
            for margin in margins
        ]
        grads = jax.grad(lambda a, b: jaxloss.contrastive(a, b, similar), argnums=(0, 1))(a, b)
        return values, grads

    values, grads = run(x1.astype(np.float32), x2.astype(np.float32))
    for margin, value in zip(margins, values, strict=True):
        np.testing.assert_allclose(
            value, ref.contrastive(x1, x2, similar, margin=margin), rtol=1e-5, atol=1e-6
        )
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_ratio_loss_matches_the_paper_and_saturates_without_overflow():
    rng = np.random.default_rng(5)
    a, pos, neg = (rng.normal(size=(15, 4)) for _ in range(3))
    zero, far = np.zeros((1, 2), np.float32), np.array([[1e4, 0.0]], np.float32)

    @jax.jit
    def run(a, pos, neg, zero, far):
        per_example = jaxloss.ratio_loss(a, pos, neg, reduction="none")
        saturated = jax.value_and_grad(jaxloss.ratio_loss, argnums=(0, 1, 2))(zero, zero, far)
        return per_example, saturated, jaxloss.ratio_loss(zero, far, zero)

    per_example, (value, grads), reversed_ = run(
        *(x.astype(np.float32) for x in (a, pos, neg)), zero, far
    )
    np.testing.assert_allclose(per_example, ref.ratio_loss(a, pos, neg), rtol=1e-5)
    assert float(value) == 0.0 and all(np.all(np.isfinite(g)) for g in grads)
    np.testing.assert_allclose(reversed_, 2)


NT_XENT_TEMPERATURES = [0.05, 0.5, 1.0]


def _nt_xent_inputs():
    rng = np.random.default_rng(6)
    z1, z2 = rng.normal(size=(10, 8)), rng.normal(size=(10, 8))
    where = rng.uniform(size=10) < 0.7
    return z1, z2, where


@functools.cache
def _nt_xent_ours():
    z1, z2, where = _nt_xent_inputs()

    @jax.jit
    def run(z1, z2, where):
        return [
            [
                jaxloss.nt_xent(z1, z2, temperature=t, where=mask, reduction="none")
                for mask in (None, where)
            ]
            for t in NT_XENT_TEMPERATURES
        ]

    return jax.tree.map(np.asarray, run(z1.astype(np.float32), z2.astype(np.float32), where))


@pytest.mark.parametrize("temperature", NT_XENT_TEMPERATURES)
def test_nt_xent_matches_simclr(temperature):
    z1, z2, where = _nt_xent_inputs()
    ours = _nt_xent_ours()[NT_XENT_TEMPERATURES.index(temperature)]
    for mask, value in zip((None, where), ours, strict=True):
        np.testing.assert_allclose(
            value,
            ref.nt_xent(z1, z2, temperature=temperature, where=mask),
            rtol=2e-5,
            atol=1e-5,
        )


def test_nt_xent_mean_is_simclrs_mean_over_all_views():
    # Against torch's cross-entropy over the 2N x 2N similarities with the diagonal removed.
    rng = np.random.default_rng(7)
    z1, z2 = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    u = F.normalize(torch.tensor(np.concatenate([z1, z2])), dim=1)
    logits = (u @ u.T / 0.3).fill_diagonal_(-float("inf"))
    targets = torch.tensor(np.concatenate([np.arange(6, 12), np.arange(6)]))
    expected = F.cross_entropy(logits, targets).item()
    ours = jax.jit(functools.partial(jaxloss.nt_xent, temperature=0.3))(
        z1.astype(np.float32), z2.astype(np.float32)
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-5)


# --- batch_triplet -----------------------------------------------------------------------------

MININGS = ["all", "hard", "semihard"]
MINING_SQUARED = list(itertools.product(MININGS, [False, True]))


def _identities(batch, num_ids, seed, dim=5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_ids, size=batch)
    centers = rng.normal(size=(num_ids, dim))
    embeddings = centers[labels] * 0.8 + rng.normal(size=(batch, dim)) * 0.7
    return embeddings.astype(np.float32), labels.astype(np.int32)


def _reference_case(mining, squared):
    return _identities(30, 7, seed=MININGS.index(mining) + 10 * int(squared))


REFERENCE_WHERE = np.random.default_rng(8).uniform(size=30) < 0.8


@functools.cache
def _batch_triplet_reference_run():
    # Every (mining, squared) case, with and without the mask, every reduction: one function
    # with a traced margin, so one compilation for all the cases and margins.
    @jax.jit
    def run(inputs, margin, where):
        return [
            [
                {
                    reduction: jaxloss.batch_triplet(
                        x,
                        labels,
                        margin=margin,
                        mining=mining,
                        squared=squared,
                        where=mask,
                        reduction=reduction,
                    )
                    for reduction in ("none", "sum", "mean")
                }
                for mask in (None, where)
            ]
            for (x, labels), (mining, squared) in zip(inputs, MINING_SQUARED, strict=True)
        ]

    return run


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("squared", [False, True])
def test_batch_triplet_matches_the_reference(mining, squared):
    # 30 examples of 7 identities: some appear once (anchors without a positive). Margins
    # 0.2, 1 and 3 (traced) and every reduction, with and without a mask.
    embeddings, labels = _reference_case(mining, squared)
    inputs = [_reference_case(*case) for case in MINING_SQUARED]
    index = MINING_SQUARED.index((mining, squared))
    for margin in (0.2, 1.0, 3.0):
        options = {"margin": margin, "mining": mining, "squared": squared}
        outputs = _batch_triplet_reference_run()(inputs, np.float32(margin), REFERENCE_WHERE)
        for mask, got in zip((None, REFERENCE_WHERE), outputs[index], strict=True):
            totals, count = ref.batch_triplet_terms(embeddings, labels, where=mask, **options)
            expected = {
                "none": totals,
                "sum": totals.sum(),
                "mean": totals.sum() / max(count, 1),
            }
            for reduction, value in expected.items():
                np.testing.assert_allclose(
                    got[reduction],
                    value,
                    rtol=2e-5,
                    atol=1e-5,
                    err_msg=f"{reduction}, margin {margin}",
                )


def _triplet_value_and_grad(x, labels, where=None, **options):
    """Traceable: ``batch_triplet``'s mean and its gradient."""
    return jax.value_and_grad(jaxloss.batch_triplet)(x, labels, where=where, **options)


@functools.cache
def _degenerate_batches():
    @jax.jit
    def run(x, labels):
        return [_triplet_value_and_grad(x, labels, mining=mining) for mining in MININGS]

    one_identity = np.zeros(6, np.int32)
    all_different = np.arange(6, dtype=np.int32)
    embeddings = np.random.default_rng(9).normal(size=(6, 3)).astype(np.float32)
    return [jax.tree.map(np.asarray, run(embeddings, y)) for y in (one_identity, all_different)]


@pytest.mark.parametrize("mining", MININGS)
def test_batch_triplet_degenerate_batches_are_zero_with_finite_gradients(mining):
    for per_mining in _degenerate_batches():  # one identity, then every example its own
        value, grad = per_mining[MININGS.index(mining)]
        assert float(value) == 0.0
        assert np.all(grad == 0)


@functools.cache
def _identical_embeddings():
    @jax.jit
    def run(x, labels):
        return [
            _triplet_value_and_grad(x, labels, mining=mining, squared=squared)
            for mining, squared in MINING_SQUARED
        ]

    return jax.tree.map(np.asarray, run(np.ones((6, 4), np.float32), np.array([0, 0, 1, 1, 2, 2])))


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("squared", [False, True])
def test_batch_triplet_identical_embeddings_have_finite_gradients(mining, squared):
    # Zero distances everywhere: the safe square root, not sqrt'(0) = inf.
    value, grad = _identical_embeddings()[MINING_SQUARED.index((mining, squared))]
    np.testing.assert_allclose(value, 1.0)  # every triplet costs the margin
    assert np.all(np.isfinite(grad))


def _masked_nan_rows_inputs():
    embeddings, labels = _identities(12, 3, seed=11)
    where = np.ones(12, bool)
    where[[2, 5]] = False
    poisoned = embeddings.copy()
    poisoned[[2, 5]] = np.nan
    return embeddings, poisoned, labels, where


@functools.cache
def _masked_nan_rows():
    _, poisoned, labels, where = _masked_nan_rows_inputs()

    @jax.jit
    def run(x, labels, where):
        return [_triplet_value_and_grad(x, labels, where, mining=mining) for mining in MININGS]

    return jax.tree.map(np.asarray, run(poisoned, labels, where))


@pytest.mark.parametrize("mining", MININGS)
def test_batch_triplet_masked_nan_rows_stay_out(mining):
    embeddings, _, labels, where = _masked_nan_rows_inputs()
    value, grad = _masked_nan_rows()[MININGS.index(mining)]
    np.testing.assert_allclose(
        value, ref.batch_triplet_mean(embeddings, labels, mining=mining, where=where), rtol=2e-5
    )
    assert np.all(np.isfinite(grad)) and np.all(np.asarray(grad)[[2, 5]] == 0)


@pytest.mark.parametrize("mining", MININGS)
def test_batch_triplet_memory_is_quadratic_in_the_batch(mining):
    # Compiled, not run: value_and_grad at B = 1024, D = 128 stays O(B²) (a B³ triplet
    # tensor would need 4 GiB). XLA's memory analysis is exact.
    shapes = (
        jax.ShapeDtypeStruct((1024, 128), jnp.float32),
        jax.ShapeDtypeStruct((1024,), jnp.int32),
    )
    step = jax.jit(jax.value_and_grad(lambda x, y: jaxloss.batch_triplet(x, y, mining=mining)))
    temp = compile_as_users(step.lower(*shapes)).memory_analysis().temp_size_in_bytes
    assert temp < 64 * 2**20, f"{temp / 2**20:.1f} MiB"


def test_batch_triplet_semihard_picks_the_closest_farther_negative():
    # Points 0, 1 (identity 0) and 0.5, 1.5, 4 (identity 1), margin 1. Per (anchor,
    # positive): D_ap, the chosen negative, the loss:
    #   (0, 1): 1, 1.5 (0.5 is closer than the positive: not semi-hard), 0.5
    #   (1, 0): 1, 3, 0 (-1 clipped)
    #   (0.5, 1.5): 1, none farther -> the farthest, 0.5, 1.5
    #   (0.5, 4): 3.5, none farther -> 0.5, 4
    #   (1.5, 0.5): 1, 1.5, 0.5        (1.5, 4): 2.5, none farther -> 1.5, 2
    #   (4, 0.5): 3.5, 4, 0.5          (4, 1.5): 2.5, 3, 0.5
    # Mean over the 8 pairs: 9.5 / 8.
    x = np.array([[0.0], [1.0], [0.5], [1.5], [4.0]], np.float32)
    labels = np.array([0, 0, 1, 1, 1])
    ours = jax.jit(functools.partial(jaxloss.batch_triplet, mining="semihard"))(x, labels)
    np.testing.assert_allclose(ours, 9.5 / 8)
    np.testing.assert_allclose(ref.batch_triplet_mean(x, labels, mining="semihard"), 9.5 / 8)


def test_pairwise_shape_errors_name_the_argument():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"x1.*x2"):
        jaxloss.contrastive(x, np.zeros((4, 2), np.float32), np.ones(4))
    with pytest.raises(ValueError, match="similar"):
        jaxloss.contrastive(x, x, np.ones(5))
    with pytest.raises(ValueError, match="p"):
        jaxloss.triplet_margin(x, x, x, p=0.0)
    with pytest.raises(ValueError, match="squared"):
        jaxloss.triplet_margin(x, x, x, p=1.0, squared=True)
    with pytest.raises(ValueError, match="mining"):
        jaxloss.batch_triplet(x, np.zeros(4, np.int32), mining="hardest")
    with pytest.raises(ValueError, match="labels"):
        jaxloss.batch_triplet(x, np.zeros(5, np.int32))
    with pytest.raises(TypeError, match="labels"):
        jaxloss.batch_triplet(x, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="embeddings"):
        jaxloss.batch_triplet(np.zeros(4, np.float32), np.zeros(4, np.int32))
    with pytest.raises(ValueError, match="z1"):
        jaxloss.nt_xent(x, np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match=r"x1.*x2.*targets"):
        jaxloss.margin_ranking(np.zeros(3), np.zeros(4), np.ones(3))


# --- triplet_margin_with_distance --------------------------------------------------------------


def _torch_cosine_distance(x, y):
    return 1 - F.cosine_similarity(x, y, dim=-1)


def _torch_l1(x, y):
    return torch.sum(torch.abs(x - y), dim=-1)


def _jax_l1(x, y):
    return jnp.sum(jnp.abs(x - y), axis=-1)


DISTANCES = {
    "default": (None, None),
    "cosine": (jaxloss.cosine_distance, _torch_cosine_distance),
    "l1": (_jax_l1, _torch_l1),
}
WITH_DISTANCE_GRID = list(
    itertools.product(DISTANCES, [False, True], [0.4, 1.5], ["mean", "sum", "none"])
)


def _with_distance_inputs():
    rng = np.random.default_rng(12)
    return [rng.normal(size=(11, 6)) for _ in range(3)]


@functools.cache
def _with_distance_ours():
    arrays = _with_distance_inputs()
    cases = [
        (arrays, {"distance_function": DISTANCES[d][0], "swap": s, "margin": m, "reduction": r})
        for d, s, m, r in WITH_DISTANCE_GRID
    ]
    return compiled.values_and_grads_of_cases(jaxloss.triplet_margin_with_distance, cases)


@pytest.mark.parametrize(
    "distance, swap, margin, reduction",
    WITH_DISTANCE_GRID,
    ids=[f"{d}-swap{s}-m{m}-{r}" for d, s, m, r in WITH_DISTANCE_GRID],
)
def test_triplet_margin_with_distance_matches_torch(distance, swap, margin, reduction):
    options = {"swap": swap, "margin": margin, "reduction": reduction}
    theirs = _torch_grads(
        lambda *t: F.triplet_margin_with_distance_loss(
            *t, distance_function=DISTANCES[distance][1], **options
        ),
        *_with_distance_inputs(),
    )
    ours = _with_distance_ours()[WITH_DISTANCE_GRID.index((distance, swap, margin, reduction))]
    _assert_matches_torch(ours, theirs)


def test_triplet_margin_with_distance_is_safe_at_zero_distance():
    # Identical anchor, positive and negative: every distance 0 (or eps-sized), the hinge
    # active; the default and the cosine distance keep finite gradients, and a zero vector too.
    x = np.array([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]], np.float32)

    @jax.jit
    def run(x):
        return [
            jax.value_and_grad(
                lambda a, p, n, d=d: jaxloss.triplet_margin_with_distance(
                    a, p, n, distance_function=d, swap=True
                ),
                argnums=(0, 1, 2),
            )(x, x, x)
            for d in (None, jaxloss.cosine_distance)
        ]

    for value, grads in run(x):
        np.testing.assert_allclose(value, 1.0, atol=1e-5)
        assert all(np.all(np.isfinite(g)) for g in grads)


def test_triplet_margin_with_distance_errors_name_the_option():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="margin"):
        jaxloss.triplet_margin_with_distance(x, x, x, margin=0.0)
    with pytest.raises(TypeError, match="distance_function"):
        jaxloss.triplet_margin_with_distance(x, x, x, distance_function="cosine")
    with pytest.raises(ValueError, match=r"distance_function.*\(4,\)"):
        jaxloss.triplet_margin_with_distance(x, x, x, distance_function=lambda a, b: a - b)


# --- optax's triplet_margin_loss ----------------------------------------------------------------


def test_optax_triplet_margin_agrees_at_p2_and_drops_the_absolute_value_at_p1():
    # optax computes (Σ (a - x)^p + eps)^(1/p): for p = 1 the differences' signs survive.
    # Here a - pos = (3, 4) and a - neg = (-1, -1): the true L1 distances are 7 and 2, so
    # torch and jaxloss give 7 - 2 + 1 = 6; optax's "distance" to neg is -2, giving 10.
    anchor, positive, negative = (
        np.zeros((1, 2), np.float32),
        np.array([[-3.0, -4.0]], np.float32),
        np.ones((1, 2), np.float32),
    )

    @jax.jit
    def run(a, pos, neg):
        return {
            p: (
                jaxloss.triplet_margin(a, pos, neg, p=p, eps=0.0, reduction="none"),
                optax.losses.triplet_margin_loss(a, pos, neg, norm_degree=p, eps=0.0),
            )
            for p in (1, 2)
        }

    out = run(anchor, positive, negative)
    np.testing.assert_allclose(out[1][0], [6.0])
    np.testing.assert_allclose(out[1][1], [10.0])
    np.testing.assert_allclose(out[2][0], out[2][1], rtol=1e-6)
    np.testing.assert_allclose(out[2][0], [5 - np.sqrt(2) + 1], rtol=1e-6)


# --- nt_xent with labels ------------------------------------------------------------------------

LABELLED_TEMPERATURES = [0.07, 0.5]


def _labelled_inputs():
    rng = np.random.default_rng(13)
    labels = rng.integers(0, 4, size=12)
    labels[5] = 9  # an anchor without positives: it adds nothing and is not counted
    where = rng.uniform(size=12) < 0.75
    return rng.normal(size=(12, 6)), labels, where


@functools.cache
def _labelled_ours():
    x, labels, where = _labelled_inputs()

    @jax.jit
    def run(x, labels, where):
        def of(t, mask, reduction):
            return compiled.value_and_grads(
                lambda e: jaxloss.nt_xent(
                    e, labels=labels, temperature=t, where=mask, reduction=reduction
                ),
                x,
            )

        return [
            [{r: of(t, mask, r) for r in ("none", "mean")} for mask in (None, where)]
            for t in LABELLED_TEMPERATURES
        ]

    return jax.tree.map(np.asarray, run(x.astype(np.float32), labels, where))


@functools.cache
def _labelled_optax():
    """optax's ntxent of the kept rows at each temperature, in one compilation."""
    x, labels, kept = _labelled_inputs()
    x, labels = x[kept].astype(np.float32), labels[kept].astype(np.int32)
    return jax.jit(lambda: [optax.losses.ntxent(x, labels, t) for t in LABELLED_TEMPERATURES])()


@pytest.mark.parametrize("temperature", LABELLED_TEMPERATURES)
def test_nt_xent_of_labels_matches_the_reference_and_optax(temperature):
    x, labels, where = _labelled_inputs()
    out = _labelled_ours()[LABELLED_TEMPERATURES.index(temperature)]
    for mask, got in zip((None, where), out, strict=True):
        options = {"temperature": temperature, "where": mask}
        np.testing.assert_allclose(
            got["none"][0], ref.nt_xent_of_labels(x, labels, **options), rtol=2e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            got["mean"][0], ref.nt_xent_of_labels_mean(x, labels, **options), rtol=2e-5
        )
    kept = where
    expected = _labelled_optax()[LABELLED_TEMPERATURES.index(temperature)]
    np.testing.assert_allclose(out[1]["mean"][0], expected, rtol=2e-5)
    assert np.all(out[1]["mean"][1][0][~kept] == 0)


def test_nt_xent_of_labels_of_two_views_is_the_two_view_form():
    rng = np.random.default_rng(14)
    z1, z2 = (rng.normal(size=(5, 3)).astype(np.float32) for _ in range(2))
    views = np.concatenate([z1, z2])
    labels = np.concatenate([np.arange(5), np.arange(5)])

    @jax.jit
    def run(z1, z2, views):
        return (
            jaxloss.nt_xent(z1, z2, temperature=0.3),
            jaxloss.nt_xent(views, labels=labels, temperature=0.3),
        )

    two_views, labelled = run(z1, z2, views)
    np.testing.assert_allclose(labelled, two_views, rtol=1e-5)


@functools.cache
def _labelled_degenerate():
    x = np.random.default_rng(15).normal(size=(4, 3)).astype(np.float32)

    @jax.jit
    def run(x):
        return [
            jax.value_and_grad(lambda e, y=y: jaxloss.nt_xent(e, labels=y))(x)
            for y in (np.arange(4), np.zeros(4, np.int32))
        ]

    return jax.tree.map(np.asarray, run(x))


def test_nt_xent_of_labels_degenerate_batches():
    # No positive pair: 0 with zero gradients (optax: 0/0 = NaN). One label: every pair
    # costs 0 (no negatives), as optax.
    (no_pairs, no_pairs_grad), (one_label, one_label_grad) = _labelled_degenerate()
    assert float(no_pairs) == 0.0 and np.all(no_pairs_grad == 0)
    assert float(one_label) == 0.0 and np.all(np.isfinite(one_label_grad))


def test_nt_xent_forms_need_exactly_one_of_z2_and_labels():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(TypeError, match="not both"):
        jaxloss.nt_xent(x, x, labels=np.zeros(4, np.int32))
    with pytest.raises(TypeError, match="not neither"):
        jaxloss.nt_xent(x)
    with pytest.raises(TypeError, match="labels=labels"):  # optax's positional labels
        jaxloss.nt_xent(x, np.zeros(4, np.int32))
    with pytest.raises(ValueError, match="labels"):
        jaxloss.nt_xent(x, labels=np.zeros(5, np.int32))
    with pytest.raises(TypeError, match="labels"):
        jaxloss.nt_xent(x, labels=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="z1"):
        jaxloss.nt_xent(np.zeros(4, np.float32), labels=np.zeros(4, np.int32))


# --- cosine_similarity and cosine_distance (utilities) ------------------------------------------

COSINE_AXES = [-1, 0, (0, 2)]


def _cosine_utility_inputs():
    rng = np.random.default_rng(16)
    x1, x2 = rng.normal(size=(4, 3, 5)), rng.normal(size=(4, 3, 5))
    x1[0, 0] = 0.0  # zero vectors along the last axis: cosine 0, finite gradients
    x2[1, :, :] = 0.0
    return x1, x2


@functools.cache
def _cosine_utility_ours():
    x1, x2 = _cosine_utility_inputs()

    @jax.jit
    def run(x1, x2):
        return {
            (name, str(axis)): compiled.value_and_grads(
                functools.partial(getattr(jaxloss, name), axis=axis), x1, x2
            )
            for name in ("cosine_similarity", "cosine_distance")
            for axis in COSINE_AXES
        }

    return jax.tree.map(np.asarray, run(*(x.astype(np.float32) for x in (x1, x2))))


@pytest.mark.parametrize("axis", COSINE_AXES, ids=str)
@pytest.mark.parametrize("name", ["cosine_similarity", "cosine_distance"])
def test_cosine_utilities_match_torch_and_are_finite_at_zero_vectors(name, axis):
    x1, x2 = _cosine_utility_inputs()
    value, grads = _cosine_utility_ours()[(name, str(axis))]
    similarity = ref.cosine_similarity(x1, x2, axis=axis)
    expected = similarity if name == "cosine_similarity" else 1 - similarity
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
    assert all(np.all(np.isfinite(g)) for g in grads)
    if axis == -1:  # torch's cosine_similarity: the same eps, one axis; values and gradients
        sign = 1 if name == "cosine_similarity" else -1
        theirs = _torch_grads(lambda a, b: sign * F.cosine_similarity(a, b, dim=-1), x1, x2)
        theirs = (expected, theirs[1])
        _assert_matches_torch((value, grads), theirs)


def test_cosine_utilities_broadcast_upcast_and_check():
    x = np.array([[3.0, 4.0]], np.float16)
    out = jax.jit(jaxloss.cosine_similarity)(x, np.array([1.0, 0.0], np.float32))
    assert out.dtype == jnp.float32 and out.shape == (1,)
    np.testing.assert_allclose(out, [0.6], rtol=1e-6)
    with pytest.raises(TypeError, match="x1"):
        jaxloss.cosine_similarity(np.ones(3, np.int32), np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"x1.*x2"):
        jaxloss.cosine_distance(np.ones(3, np.float32), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="axis"):
        jaxloss.cosine_similarity(np.ones(3, np.float32), np.ones(3, np.float32), axis=1)
    with pytest.raises(ValueError, match="eps"):
        jaxloss.cosine_similarity(np.ones(3, np.float32), np.ones(3, np.float32), eps=-1.0)


def test_cosine_derivative_rule_to_second_order_and_in_eps():
    # cosine_similarity's written-out derivative (``_cosine``): against finite differences
    # in float64 to second order, in both vectors and in ``eps``, with one vector below the
    # floor (norm 0.05 < eps 0.1, where the floor's own derivative -cos/eps applies); to
    # first order with the vectors along a tuple of two axes.
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        x1, x2 = rng.normal(size=(2, 4, 3, 5))
        x1[1] *= 0.05 / np.linalg.norm(x1[1], axis=-1, keepdims=True)
        for axis, order in ((-1, 2), ((1, 2), 1)):
            # Jitted: check_grads then compiles each derivative once, not every operation.

            @jax.jit
            def cosines(a, b, eps, axis=axis):
                return jaxloss.cosine_similarity(a, b, axis=axis, eps=eps)

            # A step of 1e-5: at the default 1e-4 the differences' own truncation error
            # (curvature ~ 1/0.05³ at the small vector) passes the tolerance.
            check_grads(cosines, (x1, x2, 0.1), order=order, modes=("fwd", "rev"), eps=1e-5)


def test_triplet_margin_max_norm_from_a_numpy_or_traced_p():
    # Only a Python inf took the max norm; a NumPy or JAX inf, or a traced p, went through
    # (Σ|d|^p)^(1/p) = inf^0 = 1: every distance 1, the loss the margin.
    rng = np.random.default_rng(13)
    a, pos, neg = (rng.normal(size=(5, 4)).astype(np.float32) for _ in range(3))
    expected = F.triplet_margin_loss(*map(torch.tensor, (a, pos, neg)), p=float("inf")).item()
    traced = jax.jit(lambda p: jaxloss.triplet_margin(a, pos, neg, p=p))
    for p in (np.float32(np.inf), jnp.asarray(np.inf)):
        np.testing.assert_allclose(jaxloss.triplet_margin(a, pos, neg, p=p), expected, rtol=1e-6)
    np.testing.assert_allclose(traced(np.inf), expected, rtol=1e-6)
    np.testing.assert_allclose(traced(3.0), jaxloss.triplet_margin(a, pos, neg, p=3.0), rtol=1e-6)
    grad = jax.grad(lambda x: jaxloss.triplet_margin(x, pos, neg, p=jnp.float32(np.inf)))(a)
    assert np.all(np.isfinite(grad))
    # A NumPy 2 with squared=True is the squared Euclidean distance, as a Python 2.
    np.testing.assert_allclose(
        jaxloss.triplet_margin(a, pos, neg, p=np.float32(2.0), squared=True),
        jaxloss.triplet_margin(a, pos, neg, squared=True),
    )
