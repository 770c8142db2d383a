"""``margin_loss``, ``tuplet_margin`` and ``fast_ap``: hand-worked values, the edge cases of a
batch (anchors without positives or negatives, identical and zero embeddings, NaN in masked
rows) and pytorch-metric-learning on them. The shared suites check the float64 references,
masks, devices and PML on random shapes (``tests/pairwise/cases_sampling.py``)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.experimental.checkify import JaxRuntimeError

import jaxloss
from tests._suite import compiled

SQRT2 = np.sqrt(2.0)
# Three unit vectors at 90° steps: d(0, 1) = d(1, 2) = √2, d(0, 2) = 2.
QUARTER_TURNS = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
LABELS = jnp.array([0, 0, 1])


@jax.jit
def _by_hand():
    return {
        "margin": jaxloss.margin_loss(QUARTER_TURNS, LABELS),
        "margin[classes]": jax.value_and_grad(
            lambda beta: jaxloss.margin_loss(QUARTER_TURNS, LABELS, beta, nu=0.1), argnums=0
        )(jnp.array([1.0, 2.0])),
        "margin[none]": jaxloss.margin_loss(QUARTER_TURNS, LABELS, reduction="none"),
        "tuplet": jaxloss.tuplet_margin(
            QUARTER_TURNS, LABELS, margin=0.0, scale=1.0, reduction="none"
        ),
        "tuplet[margin]": jaxloss.tuplet_margin(QUARTER_TURNS, LABELS, margin=90.0, scale=1.0),
        "fast_ap": jaxloss.fast_ap(QUARTER_TURNS, LABELS, num_bins=2, reduction="none"),
        "fast_ap[mean]": jaxloss.fast_ap(QUARTER_TURNS, LABELS, num_bins=2),
        "fast_ap[bins=4]": jaxloss.fast_ap(QUARTER_TURNS, LABELS, num_bins=4, reduction="none"),
    }


def test_by_hand():
    out = _by_hand()
    # β = 1.2, α = 0.2: the positive pair (√2) passes β - α = 1 by √2 - 1, from each end;
    # the negatives (2 and √2) are beyond β + α = 1.4. Two active terms of four.
    np.testing.assert_allclose(out["margin"], SQRT2 - 1, rtol=1e-6)
    np.testing.assert_allclose(out["margin[none]"], [SQRT2 - 1, SQRT2 - 1, 0.0], rtol=1e-6)
    # Class 0's β = 1: each positive term is √2 - 1 + 0.2, plus ν β = 0.1 per triplet;
    # the mean divides by the 2 active terms. Anchor 2 (class 1) has no triplet, so β_1
    # gets no gradient; β_0 gets (-1 - 1 + 0.1 + 0.1) / 2.
    value, grad = out["margin[classes]"]
    np.testing.assert_allclose(value, (2 * (SQRT2 - 0.8) + 0.2) / 2, rtol=1e-6)
    np.testing.assert_allclose(grad, [-0.9, 0.0], rtol=1e-6)
    # Each positive pair at 90°: log(1 + e^(cos θ_an - 0)); anchor 0's negative is at 180°
    # (cos -1), anchor 1's at 90° (cos 0).
    np.testing.assert_allclose(out["tuplet"], [np.log1p(np.exp(-1.0)), np.log(2.0), 0.0], rtol=1e-6)
    # A 90° margin puts the positives at θ - β = 0: log(1 + e^(-2)) and log(1 + e^(-1)).
    expected = (np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-1.0))) / 2
    np.testing.assert_allclose(out["tuplet[margin]"], expected, rtol=1e-6)
    # Anchor 0: positive at d² = 2 before the negative at 4, AP 1. Anchor 1: positive and
    # negative tie at 2, AP 1/2. Anchor 2 has no positive: 0, left out of the mean.
    np.testing.assert_allclose(out["fast_ap"], [0.0, 0.5, 0.0], atol=1e-7)
    np.testing.assert_allclose(out["fast_ap[mean]"], 0.25, rtol=1e-6)
    np.testing.assert_allclose(out["fast_ap[bins=4]"], [0.0, 0.5, 0.0], atol=1e-7)


LOSSES = {
    "margin_loss": functools.partial(jaxloss.margin_loss, margin=0.3, nu=0.1),
    "tuplet_margin": jaxloss.tuplet_margin,
    "fast_ap": jaxloss.fast_ap,
}


@functools.cache
def _reductions(name):
    return compiled.reductions_and_grads(LOSSES[name], (0,))


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("labels", [[0, 1, 2, 3], [4, 4, 4, 4]], ids=["singletons", "one-label"])
def test_without_positives_or_negatives_is_zero(name, labels):
    # No triplet, no positive pair (singletons), or no negative: each anchor's loss is 0
    # (FastAP: AP 1 when every candidate is a positive), as PML's.
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
    out = _reductions(name)(x, jnp.array(labels))
    for reduction in ("mean", "sum", "none"):
        value, (grad,) = out[reduction]
        assert np.all(np.asarray(value) == 0.0), reduction
        # FastAP of one label: AP is 1 whatever the distances, its gradient 0 up to rounding.
        np.testing.assert_allclose(grad, 0.0, atol=1e-5, err_msg=reduction)


@jax.jit
def _identical_and_zero_embeddings():
    x = jnp.ones((4, 3))
    labels = jnp.array([0, 0, 1, 1])
    zero_first = x.at[0].set(0.0)
    return {
        name: [jax.value_and_grad(loss)(a, labels) for a in (x, zero_first)]
        for name, loss in LOSSES.items()
    }


def test_identical_and_zero_embeddings_are_finite():
    # θ = 0 and distance 0 between every row, where PML's arccos and square root have NaN
    # or inf gradients; a zero embedding stays 0 after normalization.
    for name, runs in _identical_and_zero_embeddings().items():
        for value, grad in runs:
            assert np.isfinite(value) and np.all(np.isfinite(grad)), name
    (margin, _), _ = _identical_and_zero_embeddings()["margin_loss"]
    # Each of the 4 anchors has 1 positive and 2 negatives: 8 triplets. Each negative term,
    # at distance 0 < β + α, costs α + β = 1.5 (the positives, at 0 < β - α, cost 0), and
    # each triplet ν β = 0.12: over the 8 active terms, 1.62.
    np.testing.assert_allclose(margin, 1.5 + 0.12, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_masked_row_of_nan_is_dropped(name):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 3)).astype(np.float32)
    labels = jnp.array([0, 1, 0, 1, 2, 0])
    keep = jnp.array([True, True, True, True, True, False])

    @jax.jit
    def value_and_grads(x):
        masked = jax.value_and_grad(lambda a: LOSSES[name](a, labels, where=keep))(
            x.at[5].set(jnp.nan)
        )
        return masked, jax.value_and_grad(lambda a: LOSSES[name](a, labels[:5]))(x[:5])

    # NumPy out: indexed below without compiling.
    (value, grad), (dropped, dropped_grad) = jax.tree.map(np.asarray, value_and_grads(x))
    np.testing.assert_allclose(value, dropped, rtol=1e-6)
    assert np.all(grad[5] == 0)
    np.testing.assert_allclose(grad[:5], dropped_grad, rtol=1e-5, atol=1e-7)


def _pml(name, embeddings, labels, beta=None, **options):
    """PML's value and gradients (embeddings, and β when given) in float64."""
    from pytorch_metric_learning import losses

    x = torch.tensor(np.asarray(embeddings, np.float64), requires_grad=True)
    inputs = [x]
    loss = getattr(losses, name)(**options)
    if beta is not None:
        del loss.beta
        loss.beta = torch.tensor(np.asarray(beta, np.float64), requires_grad=True)
        inputs.append(loss.beta)
    value = loss(x, torch.tensor(np.asarray(labels), dtype=torch.int64))
    grads = torch.autograd.grad(value, inputs, allow_unused=True)
    return value.item(), [
        np.zeros(t.shape) if g is None else g.numpy() for g, t in zip(grads, inputs, strict=True)
    ]


# Edge batches: a class with one member (and one negative for the rest), two one-member
# classes beside a pair, labels beyond the first ones.
EDGE_LABELS = [[0, 0, 0, 1], [0, 1, 2, 2, 0], [3, 3, 3, 3, 1, 1]]


def _ours_on_edge(x, labels):
    beta = jnp.array([1.0, 1.1, 1.2, 1.3])
    return {
        "margin": jax.value_and_grad(
            lambda x, beta: jaxloss.margin_loss(x, labels, beta, margin=0.3, nu=0.2),
            argnums=(0, 1),
        )(x, beta),
        "tuplet": jax.value_and_grad(
            lambda x: jaxloss.tuplet_margin(x, labels, margin=10.0, scale=8.0)
        )(x),
        "fast_ap": jax.value_and_grad(lambda x: jaxloss.fast_ap(x, labels, num_bins=5))(x),
    }


@jax.jit
def _ours_on_edges(batches):
    return [_ours_on_edge(x, labels) for x, labels in batches]


def test_pml_on_edge_batches():
    rng = np.random.default_rng(3)
    batches = [
        (jnp.asarray(rng.normal(size=(len(y), 3)), jnp.float32), jnp.array(y)) for y in EDGE_LABELS
    ]
    for (x, labels), ours in zip(batches, _ours_on_edges(batches), strict=True):
        beta = np.array([1.0, 1.1, 1.2, 1.3])
        expected = {
            "margin": _pml(
                "MarginLoss", x, labels, beta, margin=0.3, nu=0.2, learn_beta=True, num_classes=4
            ),
            "tuplet": _pml("TupletMarginLoss", x, labels, margin=10.0, scale=8.0),
            "fast_ap": _pml("FastAPLoss", x, labels, num_bins=5),
        }
        for name, (value, grads) in expected.items():
            our_value, our_grads = ours[name]
            our_grads = our_grads if isinstance(our_grads, tuple) else (our_grads,)
            where = f"{name}, labels {np.asarray(labels)}"
            np.testing.assert_allclose(our_value, value, rtol=1e-5, atol=1e-7, err_msg=where)
            for g, e in zip(our_grads, grads, strict=True):
                np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6, err_msg=where)


def test_fast_ap_gradient_with_distances_on_bin_edges():
    # One-hot embeddings: every distance² is 0 or 2, on a bin edge of the default 10 bins.
    # A bin whose positives' mass is 0 there still has its product's derivative; it was
    # zeroed with the value (PML's gradients below: [0, -0.556, 0.278, 0.278] for row 0).
    x, labels = np.eye(4, dtype=np.float32), np.array([0, 0, 1, 1])
    value, grad = jax.jit(jax.value_and_grad(jaxloss.fast_ap))(x, labels)
    expected_value, (expected_grad,) = _pml("FastAPLoss", x, labels)
    np.testing.assert_allclose(value, expected_value, rtol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-6)


def test_beta_must_be_a_scalar_or_per_class():
    with pytest.raises(ValueError, match="`beta`"):
        jax.eval_shape(lambda: jaxloss.margin_loss(QUARTER_TURNS, LABELS, jnp.ones((2, 2))))


def test_num_bins_must_be_a_positive_int():
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="`num_bins`"):
            jaxloss.fast_ap(QUARTER_TURNS, LABELS, num_bins=bad)


def test_per_class_beta_leaves_out_rows_whose_label_is_no_class():
    # beta[labels] clamped a label past the classes for the value (and wrapped −1) while
    # the gradient's scatter dropped it: value and gradient disagreed. Such rows are left
    # out as masked ones; checked mode raises.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 3)).astype(np.float32)
    beta = np.array([1.2, 0.8], np.float32)
    keep = np.array([True, True, True, True, False, False])
    outsides = ([5, 5], [-1, 2], [2**40, 2**41])

    def run(labels, where=None):
        return jax.value_and_grad(
            lambda b: jaxloss.margin_loss(x, labels, b, where=where, reduction="sum")
        )(beta)

    # One compilation for all four; the labels stay NumPy constants (closed over), as eagerly.
    expected, *outs = jax.jit(
        lambda: [
            run(np.array([0, 0, 1, 1, 0, 1]), keep),
            *(run(np.array([0, 0, 1, 1, *outside])) for outside in outsides),
        ]
    )()
    for outside, (value, grad) in zip(outsides, outs, strict=True):
        np.testing.assert_allclose(value, expected[0], rtol=1e-6, err_msg=str(outside))
        np.testing.assert_allclose(grad, expected[1], rtol=1e-6, err_msg=str(outside))
    with pytest.raises(JaxRuntimeError, match="class ids"):
        jaxloss.checked(lambda x, y, b: jaxloss.margin_loss(x, y, b))(
            x, np.array([0, 0, 1, 1, 5, 5]), beta
        )
