"""Pair-weighting losses (multi_similarity, circle, lifted_structure): hand-worked values,
the papers' edge cases, the detached Circle weights, and PML parity on more shapes."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss
from tests.pairwise import reference_weighted as ref
from tests.pairwise.cases_weighted import PEERS

LOSSES = {
    "multi_similarity": jaxloss.multi_similarity,
    "circle": jaxloss.circle,
    "lifted_structure": jaxloss.lifted_structure,
}
# Cosines 0.6 (0, 1), 0.8 (0, 2) and 0.96 (1, 2); row 2 is alone in its class.
X = np.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6]], np.float32)
LABELS = np.array([0, 0, 1])


@functools.partial(jax.jit, static_argnames=("name", "reduction", "options"))
def _value_and_grad(name, x, labels, where=None, reduction="mean", options=()):
    """One compiled value and gradient (summed for ``"none"``) of a loss."""

    def loss(x):
        return LOSSES[name](x, labels, where=where, reduction=reduction, **dict(options))

    value = loss(x)
    return value, jax.grad(lambda x: jnp.sum(loss(x)))(x)


def test_multi_similarity_by_hand():
    pair = 0.5 * np.log1p(np.exp(-0.2))  # both positives at 0.6: ½ log(1 + e^{-2(0.6 - 0.5)})
    mined, _ = _value_and_grad("multi_similarity", X, LABELS, reduction="none")
    expected = [pair + np.log1p(np.exp(15.0)) / 50, pair + np.log1p(np.exp(23.0)) / 50, 0.0]
    np.testing.assert_allclose(mined, expected, rtol=1e-6)
    # Without mining, the anchor without positives still pays for its negatives.
    plain, _ = _value_and_grad(
        "multi_similarity", X, LABELS, reduction="none", options=(("mining", False),)
    )
    expected[2] = np.log(1 + np.exp(15.0) + np.exp(23.0)) / 50
    np.testing.assert_allclose(plain, expected, rtol=1e-6)


def test_multi_similarity_mining_keeps_the_papers_pairs():
    x = np.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.2, -0.98]], np.float32)
    labels = np.array([0, 0, 1, 1])
    for epsilon in (0.0, 0.3):
        options = (("epsilon", epsilon),)
        ours, _ = _value_and_grad("multi_similarity", x, labels, reduction="none", options=options)
        expected = ref.multi_similarity(x, labels, epsilon=epsilon)
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-7)
    # At ε = 0 every positive stays, and 3 of the 8 negatives go: those less similar to
    # their anchor than its positive (0.2 < 0.6 for anchor 0, -0.664 < 0.6 for anchor 1,
    # -0.664 < -0.428 for anchor 3).
    assert ref.mined_pair_counts(x, labels, epsilon=0.0) == (4, 5)


def test_circle_by_hand():
    # m = 1/4, γ = 1: anchor 0 has α_p = 0.65, s_p - Δ_p = -0.15, α_n = 1.05, s_n - m = 0.55.
    options = (("gamma", 1.0),)
    none, _ = _value_and_grad("circle", X, LABELS, reduction="none", options=options)
    first = np.log1p(np.exp(0.65 * 0.15 + 1.05 * 0.55))
    second = np.log1p(np.exp(0.65 * 0.15 + 1.21 * 0.71))
    np.testing.assert_allclose(none, [first, second, 0.0], rtol=1e-5)
    mean, _ = _value_and_grad("circle", X, LABELS, options=options)
    # Anchor 2 has no positive: it costs nothing and is not counted.
    np.testing.assert_allclose(mean, (first + second) / 2, rtol=1e-5)


def test_circle_weights_are_constants_in_the_gradient():
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    labels = np.arange(6) % 3
    m, gamma = 0.25, 8.0
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = u @ u.T
    same, eye = labels[:, None] == labels[None], np.eye(6, dtype=bool)
    alpha_p, alpha_n = np.maximum(1 + m - s, 0), np.maximum(s + m, 0)  # fixed, as NumPy arrays

    def by_hand(x):
        u = x / jnp.linalg.norm(x, axis=1, keepdims=True)
        s = u @ u.T
        p = jnp.where(same & ~eye, -gamma * alpha_p * (s - 1 + m), -jnp.inf)
        n = jnp.where(~same, gamma * alpha_n * (s - m), -jnp.inf)
        return jnp.mean(jax.nn.softplus(jax.nn.logsumexp(p, 1) + jax.nn.logsumexp(n, 1)))

    options = (("margin", m), ("gamma", gamma))

    @jax.jit  # one compilation for the three (_value_and_grad's traces nested in it)
    def run(x, labels):
        return (
            _value_and_grad("circle", x, labels, options=options),
            jax.value_and_grad(by_hand)(x),
            _value_and_grad("circle", x, labels, options=(*options, ("detach_weights", False))),
        )

    (value, grad), (expected, expected_grad), (_, full) = run(x, labels)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-6)
    assert not np.allclose(full, grad, rtol=1e-3)


@pytest.mark.parametrize("gamma", [256.0, 4096.0])
def test_circle_is_finite_at_large_gamma(gamma):
    x = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    labels = np.arange(8) % 2
    options = (("gamma", gamma),)
    none, grad = _value_and_grad("circle", x, labels, reduction="none", options=options)
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    expected = ref.circle(x, labels, gamma=gamma)
    np.testing.assert_allclose(none, expected, rtol=1e-5)


def test_lifted_structure_by_hand():
    # 1-d points 0, 1 (class 0) and 3, 4 (class 1), α = 1: both pairs have the negative sum
    # 2e^{-2} + e^{-3} + e^{-1} (mirror images), so L = J² with J = log(that) + 1.
    x = np.array([[0.0], [1.0], [3.0], [4.0]], np.float32)
    labels = np.array([0, 0, 1, 1])
    j = np.log(2 * np.exp(-2.0) + np.exp(-3.0) + np.exp(-1.0)) + 1
    none, _ = _value_and_grad("lifted_structure", x, labels, reduction="none")
    np.testing.assert_allclose(none, [j**2 / 2] * 4, rtol=1e-5)
    mean, _ = _value_and_grad("lifted_structure", x, labels)
    np.testing.assert_allclose(mean, j**2 / 2, rtol=1e-5)


@pytest.mark.parametrize("name", LOSSES)
def test_one_class_costs_nothing(name):
    # No negatives: mining keeps nothing, no anchor has both kinds, no J is finite.
    x = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)
    value, grad = _value_and_grad(name, x, np.zeros(4, np.int32))
    assert float(value) == 0.0 and np.all(grad == 0)


@pytest.mark.parametrize("name", LOSSES)
def test_all_masked_is_zero_with_zero_gradients(name):
    value, grad = _value_and_grad(name, X, LABELS, np.zeros(3, bool))
    assert float(value) == 0.0 and np.all(grad == 0)


@pytest.mark.parametrize("name", LOSSES)
def test_identical_and_zero_embeddings_have_finite_gradients(name):
    for x in (np.ones((4, 3), np.float32), np.zeros((4, 3), np.float32)):
        value, grad = _value_and_grad(name, x, np.array([0, 0, 1, 1]))
        assert np.isfinite(value) and np.all(np.isfinite(grad)), (name, x[0])


@pytest.mark.parametrize("name", LOSSES)
def test_nan_in_masked_rows_is_never_read(name):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    keep = np.array([True, True, False, True, True, True, False])
    poisoned = np.where(keep[:, None], x, np.nan).astype(np.float32)
    # One compilation for both (_value_and_grad's traces nested in it); NumPy out.
    (value, grad), (dropped, dropped_grad) = jax.tree.map(
        np.asarray,
        jax.jit(
            lambda poisoned, labels, keep, x_kept, labels_kept: (
                _value_and_grad(name, poisoned, labels, keep),
                _value_and_grad(name, x_kept, labels_kept),
            )
        )(poisoned, labels, keep, x[keep], labels[keep]),
    )
    np.testing.assert_allclose(value, dropped, rtol=1e-6)
    assert np.all(grad[~keep] == 0)
    np.testing.assert_allclose(grad[keep], dropped_grad, rtol=1e-5, atol=1e-7)


# The options the shared suites' cases leave at their defaults (tests/pairwise/cases_weighted.py).
OPTIONS = {
    "multi_similarity": {"mining": False, "alpha": 1.0, "beta": 10.0, "base": 0.2},
    "lifted_structure": {"normalize": True, "margin": 0.5},
}
REFERENCES = {"multi_similarity": ref.multi_similarity, "lifted_structure": ref.lifted_structure}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_options_against_the_reference_with_nan_masked_and_zero_embeddings(name):
    # In one compilation: "none" against the float64 reference; a masked row of NaN, which
    # must equal dropping it; identical and zero embeddings, with finite gradients.
    options = OPTIONS[name]
    rng = np.random.default_rng(4)
    x = rng.normal(size=(7, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    keep = np.arange(7) != 2
    plain = np.ones((4, 3), np.float32)

    @jax.jit
    def run(x):
        def loss(reduction="mean", where=None):
            return lambda x, y: LOSSES[name](x, y, where=where, reduction=reduction, **options)

        return {
            "none": loss("none")(x, labels),
            "masked": jax.value_and_grad(loss(where=keep))(x.at[2].set(jnp.nan), labels),
            "dropped": jax.value_and_grad(loss())(x[keep], labels[keep]),
            "edges": [jax.value_and_grad(loss())(e, labels[:4]) for e in (plain, 0 * plain)],
        }

    out = jax.tree.map(np.asarray, run(x))  # indexed below: in NumPy, no compilation
    expected = REFERENCES[name](x, labels, **options)
    np.testing.assert_allclose(out["none"], expected, rtol=1e-5, atol=1e-7)
    (value, grad), (dropped, dropped_grad) = out["masked"], out["dropped"]
    np.testing.assert_allclose(value, dropped, rtol=1e-6)
    assert np.all(grad[~keep] == 0)
    np.testing.assert_allclose(grad[keep], dropped_grad, rtol=1e-5, atol=1e-7)
    for value, grad in out["edges"]:
        assert np.isfinite(value) and np.all(np.isfinite(grad)), name


@pytest.mark.parametrize("key", sorted(PEERS))
def test_pml_parity_on_more_shapes(key):
    # The catalogue checks seed 0 with every option; here two more shapes, default options:
    # values and the gradient of the value (a scalar in both).
    entry = PEERS[key]
    ours = jax.jit(jax.value_and_grad(entry.ours))
    for seed in (1, 2):
        x, labels = entry.make_inputs(np.random.default_rng(seed))
        embeddings = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        expected = entry.peer(embeddings, torch.tensor(labels, dtype=torch.int64))
        (expected_grad,) = torch.autograd.grad(expected, [embeddings])
        value, grad = ours(x, labels)
        np.testing.assert_allclose(value, expected.item(), entry.rtol, entry.atol)
        np.testing.assert_allclose(grad, expected_grad.numpy(), entry.rtol, entry.atol)
