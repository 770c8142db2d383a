"""``supcon``, ``info_nce`` and ``n_pairs``: hand-worked values, the edge cases of a batch
(anchors without positives, one label, identical embeddings, NaN in masked rows) and
pytorch-metric-learning on them. The shared suites check the float64 references, masks,
devices and PML on random shapes (``tests/pairwise/cases_supervised.py``)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss
from tests._suite import compiled
from tests.pairwise.cases_supervised import _first_two_of_each_label

E = np.e


def _run(loss, *args, **options):
    """``{reduction: (value, grads)}`` of ``loss(*args, **options)`` (gradients with respect
    to the first argument), compiled once."""
    return compiled.reductions_and_grads(functools.partial(loss, **options), (0,))(*args)


def test_supcon_by_hand():
    # Anchors 0-2 share a label and a direction: each has two positives at cosine 1 and one
    # negative at cosine 0, so log((2e + 1) / e) = log(2 + 1/e). Anchor 3 has none.
    x = jnp.array([[1.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    out = _run(jaxloss.supcon, x, jnp.array([0, 0, 0, 1]), temperature=1.0)
    value = np.log(2 + 1 / E)
    np.testing.assert_allclose(out["none"][0], [value, value, value, 0.0], rtol=1e-6)
    np.testing.assert_allclose(out["mean"][0], value, rtol=1e-6)
    np.testing.assert_allclose(out["sum"][0], 3 * value, rtol=1e-6)


@jax.jit
def _info_nce_by_hand():
    q = jnp.array([[2.0, 0.0]])
    queue = jnp.array([[0.0, 1.0], [-1.0, 0.0]])
    return (
        jaxloss.info_nce(q, q, queue, temperature=1.0),
        jaxloss.info_nce(q, q, queue[None], temperature=1.0),
        jaxloss.info_nce(jnp.eye(2), jnp.eye(2), temperature=0.5, reduction="none"),
    )


def test_info_nce_by_hand():
    shared, own, in_batch = _info_nce_by_hand()
    # Cosines 1 with the positive, 0 and -1 with the negatives: log(1 + 1/e + 1/e²).
    for value in (shared, own):
        np.testing.assert_allclose(value, np.log(1 + 1 / E + 1 / E**2), rtol=1e-6)
    # In-batch: the other row's key, at cosine 0, is the only negative; τ = 0.5 doubles s.
    np.testing.assert_allclose(in_batch, np.log1p(np.exp(-2.0)) * np.ones(2), rtol=1e-6)


@jax.jit
def _n_pairs_by_hand():
    anchors, positives = jnp.array([[2.0, 0.0], [0.0, 1.0]]), jnp.eye(2)
    same = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    return [
        jaxloss.n_pairs(*args, reduction="none", **options)
        for args, options in (
            ((anchors, positives), {}),
            ((anchors, positives), {"l2_reg": 0.1}),
            ((anchors, positives), {"normalize": True}),
            ((same, same), {"labels": jnp.array([5, 5, 7])}),
            ((same, same), {"labels": jnp.arange(3)}),
            ((same, same), {}),
        )
    ]


def test_n_pairs_by_hand():
    plain, regularized, normalized, labelled, distinct, unlabelled = _n_pairs_by_hand()
    # Dot products, not cosines: f0.f0+ = 2, f0.f1+ = 0, f1.f1+ = 1, f1.f0+ = 0.
    expected = np.log1p(np.exp([-2.0, -1.0]))
    np.testing.assert_allclose(plain, expected, rtol=1e-6)
    # The regularizer: λ/4 (|f|² + |f+|²) = 0.1/4 · (5, 2).
    np.testing.assert_allclose(regularized, expected + 0.025 * np.array([5.0, 2.0]), rtol=1e-6)
    # normalize: cosines 1 and 0 for both rows.
    np.testing.assert_allclose(normalized, np.log1p(np.exp(-1.0)) * np.ones(2), rtol=1e-6)
    # Pairs 0 and 1 share a label: anchor 0's scores (1, 1, 0) with targets {0, 1} give
    # log(2e + 1) - 1; pair 2 alone against both: log(2 + e) - 1.
    expected = [np.log(2 * E + 1) - 1] * 2 + [np.log(2 + E) - 1]
    np.testing.assert_allclose(labelled, expected, rtol=1e-6)
    # Distinct labels are the form without labels.
    np.testing.assert_allclose(distinct, unlabelled, rtol=1e-6)


_supcon_reductions = compiled.reductions_and_grads(jaxloss.supcon, (0,))


@pytest.mark.parametrize("labels", [[0, 1, 2, 3], [4, 4, 4, 4]], ids=["singletons", "one-label"])
def test_supcon_without_positives_or_negatives_is_zero(labels):
    # No anchor has both: nothing counts (pytorch-metric-learning gives 0 for both).
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
    out = _supcon_reductions(x, jnp.array(labels))
    for reduction in ("mean", "sum"):
        value, (grad,) = out[reduction]
        assert float(value) == 0.0 and np.all(grad == 0), reduction


@jax.jit
def _identical_and_zero_embeddings():
    x = jnp.ones((4, 3))
    labels = jnp.array([0, 0, 1, 1])
    zero_first = x.at[0].set(0.0)
    return jax.value_and_grad(jaxloss.supcon)(x, labels), [
        jax.value_and_grad(loss)(zero_first, other)
        for loss, other in (
            (jaxloss.supcon, labels),
            (jaxloss.info_nce, x),
            (jaxloss.n_pairs, x),
            (functools.partial(jaxloss.n_pairs, normalize=True), x),
        )
    ]


def test_identical_and_zero_embeddings_are_finite():
    # θ = 0 between every row (cosine 1 everywhere): supcon is log 3 per anchor. A zero
    # embedding has cosine 0 with every other.
    (value, grad), with_a_zero_row = _identical_and_zero_embeddings()
    np.testing.assert_allclose(value, np.log(3.0), rtol=1e-6)
    assert np.all(np.isfinite(grad))
    for value, grad in with_a_zero_row:
        assert np.isfinite(value) and np.all(np.isfinite(grad))


CALLS = {
    "supcon": lambda x, y, w: jaxloss.supcon(x, jnp.array([0, 0, 1, 1, 0]), where=w),
    "info_nce": lambda x, y, w: jaxloss.info_nce(x, y, where=w),
    "info_nce[per_query]": lambda x, y, w: jaxloss.info_nce(x, y, jnp.stack([y, x], 1), where=w),
    "n_pairs": lambda x, y, w: jaxloss.n_pairs(x, y, labels=jnp.array([0, 1, 0, 2, 2]), where=w),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_masked_row_of_nan_is_dropped(name):
    rng = np.random.default_rng(1)
    x, y = (rng.normal(size=(5, 3)).astype(np.float32) for _ in range(2))
    keep = jnp.array([True, True, True, True, False])
    poisoned = [a.copy() for a in (x, y)]  # NumPy: no compilation
    for a in poisoned:
        a[4] = np.nan

    @jax.jit
    def value_and_grads(x, y):
        return jax.value_and_grad(CALLS[name], argnums=(0, 1))(x, y, keep)

    # NumPy in (one signature for both calls) and out (indexed below without compiling).
    clean, clean_grads = jax.tree.map(np.asarray, value_and_grads(x, y))
    value, grads = jax.tree.map(np.asarray, value_and_grads(*poisoned))
    np.testing.assert_allclose(value, clean, rtol=1e-6)
    for grad, clean_grad in zip(grads, clean_grads, strict=True):
        assert np.all(grad[4] == 0)
        np.testing.assert_allclose(grad, clean_grad, rtol=1e-5, atol=1e-7)


def test_info_nce_negatives_of_another_shape_are_a_value_error():
    q = jnp.ones((3, 4))
    for negatives in (jnp.ones((5, 3)), jnp.ones((2, 5, 4)), jnp.ones((3,))):
        with pytest.raises(ValueError, match="negatives"):
            jax.eval_shape(jaxloss.info_nce, q, q, negatives)


# --- pytorch-metric-learning on the edge cases ----------------------------------------------


def _pml(name, embeddings, labels):
    from pytorch_metric_learning import losses

    x = torch.tensor(np.asarray(embeddings, np.float64), requires_grad=True)
    value = getattr(losses, name)()(x, torch.tensor(labels))
    (grad,) = torch.autograd.grad(value, x, allow_unused=True)
    return value.item(), np.zeros(x.shape) if grad is None else grad.numpy()


EDGES = {
    "singletons": [0, 1, 2, 3, 4, 5],
    "one-label": [3, 3, 3, 3, 3, 3],
    "one-pair": [0, 1, 2, 3, 3, 4],
    "uneven": [2, 0, 2, 2, 1, 0],
}


@jax.jit
def _supcon_and_pml_n_pairs(x, labels):
    return [
        jax.value_and_grad(loss)(x, labels) for loss in (jaxloss.supcon, _first_two_of_each_label)
    ]


@pytest.mark.parametrize("edge", sorted(EDGES))
def test_supcon_and_n_pairs_match_pml_on_edge_cases(edge):
    x = np.random.default_rng(2).normal(size=(6, 3)).astype(np.float32)
    x[1] = x[0]  # identical embeddings (θ = 0), in the same or another class
    labels = np.array(EDGES[edge])
    ours = _supcon_and_pml_n_pairs(x, labels)
    for (value, grad), name in zip(ours, ("SupConLoss", "NPairsLoss"), strict=True):
        expected, expected_grad = _pml(name, x, labels)
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-6, err_msg=name)


def test_identities_past_int32_stay_distinct():
    # NumPy's int64 ids past 2^31 − 1 (10-digit person or product ids) saturated to one
    # value: two identities became one class and supcon read 0. Pairwise losses compare
    # labels only for equality, so each gets its own int32 value; PML keeps them apart too.
    from pytorch_metric_learning import losses as pml

    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    small = np.array([0, 0, 1, 1, 2, 2])
    big = np.array([5_000_000_000, 5_000_000_000, 6_000_000_000, 6_000_000_000, 7, 7])
    losses = {
        "supcon": lambda y: jaxloss.supcon(x, y, temperature=0.1),
        "batch_triplet": lambda y: jaxloss.batch_triplet(x, y),
        "nt_xent": lambda y: jaxloss.nt_xent(x, labels=y),
        "multi_similarity": lambda y: jaxloss.multi_similarity(x, y, mining=False),
        "circle": lambda y: jaxloss.circle(x, y),
        "lifted_structure": lambda y: jaxloss.lifted_structure(x, y),
        "margin_loss": lambda y: jaxloss.margin_loss(x, y),
        "tuplet_margin": lambda y: jaxloss.tuplet_margin(x, y),
        "fast_ap": lambda y: jaxloss.fast_ap(x, y),
        "n_pairs": lambda y: jaxloss.n_pairs(x[:3], x[3:], labels=y[::2]),
    }
    # One compilation for all of them; the labels stay NumPy int64 constants (closed over),
    # as in an eager call, so the losses map them at trace time as they would eagerly.
    out = jax.jit(lambda: {name: (loss(big), loss(small)) for name, loss in losses.items()})()
    for name, (of_big, of_small) in out.items():
        np.testing.assert_allclose(of_big, of_small, rtol=1e-6, err_msg=name)
    theirs = pml.SupConLoss(0.1)(torch.tensor(x), torch.tensor(big)).item()
    np.testing.assert_allclose(out["supcon"][0], theirs, rtol=1e-5)


def test_identities_keep_int32_ids_and_avoid_them():
    from jaxloss import _labels

    ids = np.array([2**40, -(2**31), 3, 2**40, -(2**33), 3])
    mapped = _labels.identities(ids)
    assert mapped.dtype == np.int32 and mapped[2] == mapped[5] == 3 and mapped[1] == -(2**31)
    assert mapped[0] == mapped[3] and len({mapped[0], mapped[1], mapped[2], mapped[4]}) == 4
    small = np.array([1, 2], np.int64)
    assert _labels.identities(small).tolist() == [1, 2]
