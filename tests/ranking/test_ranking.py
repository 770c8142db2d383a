"""Ranking losses: optax's and rax's published numbers, their masks and weights, and what
the shared suite cannot know (optax's NaN defects, the pairwise mean over pairs, −inf
scores, optax's item-level ``where`` spelled ``item_mask``)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from tests._suite import compiled
from tests.ranking import reference as ref

# Every JAX computation of a test runs in one compiled function (eager dispatch would compile
# each operation on its own).

SCORES = np.array([2.0, 1.0, 3.0], np.float32)
LABELS = np.array([1.0, 0.0, 0.0], np.float32)
BATCH_SCORES = np.array([[2.0, 1.0, 0.0], [1.0, 0.5, 1.5]], np.float32)
BATCH_LABELS = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
BATCH_ITEMS = np.array([[True, True, False], [True, True, True]])
UNMASKED_SCORES = np.array([[2.0, 1.0, 3.0], [1.0, 0.5, 1.5]], np.float32)


@functools.cache
def _published():
    @jax.jit
    def run():
        softmax = jaxloss.ranking_softmax
        hinge, logistic = jaxloss.pairwise_hinge_ranking, jaxloss.pairwise_logistic_ranking
        return {
            "softmax": softmax(SCORES, LABELS),
            "softmax_items": softmax(BATCH_SCORES, BATCH_LABELS, item_mask=BATCH_ITEMS),
            "softmax_grad": jax.grad(softmax)(SCORES, LABELS),
            "hinge_sum": hinge(SCORES, LABELS, reduction="sum"),
            "hinge_items": hinge(BATCH_SCORES, BATCH_LABELS, item_mask=BATCH_ITEMS),
            "hinge_lists": hinge(UNMASKED_SCORES, BATCH_LABELS, reduction="none"),
            "logistic_sum": logistic(SCORES, LABELS, reduction="sum"),
            "logistic_items": logistic(BATCH_SCORES, BATCH_LABELS, item_mask=BATCH_ITEMS),
            "logistic_lists": logistic(UNMASKED_SCORES, BATCH_LABELS, reduction="none"),
        }

    return jax.tree.map(np.asarray, run())


# optax 0.2.8's docstring of optax.losses._ranking, and rax's docstrings (rax/_src/losses.py;
# their "vmap" examples are the per-list values, our reduction="none").
PUBLISHED = {
    "softmax": 1.4076059,
    "softmax_items": 0.49676564,
    "softmax_grad": [-0.75527155, 0.09003057, 0.66524094],
    "hinge_sum": 2.0,
    "hinge_items": 0.16666667,
    "hinge_lists": [2.0, 0.5],
    "logistic_sum": 1.6265235,
    "logistic_items": 0.3668668,
    "logistic_lists": [1.6265235, 0.7873387],
}


@pytest.mark.parametrize("key", sorted(PUBLISHED))
def test_published_values(key):
    np.testing.assert_allclose(_published()[key], PUBLISHED[key], rtol=1e-6)


def _batch(seed=0, lists=6, size=7):
    rng = np.random.default_rng(seed)
    scores = (2 * rng.normal(size=(lists, size))).astype(np.float32)
    labels = rng.choice(4, p=[0.5, 0.3, 0.15, 0.05], size=(lists, size)).astype(np.float32)
    items = rng.uniform(size=(lists, size)) < 0.7
    items[0] = False  # a list without a valid item
    labels[1] = 0  # a list without a relevant item
    weights = rng.uniform(0.2, 3.0, size=(lists, size)).astype(np.float32)
    return scores, labels, items, weights


@functools.cache
def _softmax_with_weights():
    scores, labels, items, weights = _batch()

    @jax.jit
    def run(scores, labels, weights):
        def ours(w):
            return jaxloss.ranking_softmax(scores, labels, weights=w, item_mask=items)

        def theirs(w):
            return optax.losses.ranking_softmax_loss(scores, labels, weights=w, where=items)

        return compiled.value_and_grads(ours, weights), compiled.value_and_grads(theirs, weights)

    return jax.tree.map(np.asarray, run(scores, labels, weights))


def test_weights_gradient_is_optaxs_where_items_count_and_0_elsewhere():
    (value, (grad,)), (expected, (expected_grad,)) = _softmax_with_weights()
    _, _, items, _ = _batch()
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grad[items], expected_grad[items], rtol=1e-5, atol=1e-7)
    assert np.all(grad[~items] == 0)
    assert np.all(np.isnan(expected_grad[~items]))  # optax: 0 · −inf


@functools.cache
def _reductions_over_lists():
    scores, labels, items, _ = _batch(1)

    @jax.jit
    def run():
        return {
            reduction: jaxloss.ranking_softmax(scores, labels, item_mask=items, reduction=reduction)
            for reduction in ("none", "sum", "mean")
        }

    return jax.tree.map(np.asarray, run())


def test_ranking_softmax_mean_counts_lists_with_a_valid_item():
    # The list without a relevant item counts (loss 0), the list without a valid item not.
    scores, labels, items, _ = _batch(1)
    out = _reductions_over_lists()
    expected = ref.ranking_softmax(scores, labels, item_mask=items)
    np.testing.assert_allclose(out["none"], expected, rtol=1e-5, atol=1e-6)
    assert out["none"][0] == 0 and out["none"][1] == 0
    np.testing.assert_allclose(out["sum"], expected.sum(), rtol=1e-5)
    np.testing.assert_allclose(out["mean"], expected.sum() / (len(expected) - 1), rtol=1e-5)


@functools.cache
def _minus_inf_scores():
    # The third item can never be ranked: −inf, label 0. Dropping it changes nothing.
    scores = np.array([[0.5, 2.0, -np.inf, 1.0]], np.float32)
    labels = np.array([[1.0, 2.0, 0.0, 0.0]], np.float32)

    @jax.jit
    def run():
        def ours(s):
            return jaxloss.ranking_softmax(s, labels)

        def dropped(s):
            return jaxloss.ranking_softmax(s[:, [0, 1, 3]], labels[:, [0, 1, 3]])

        relevant = jaxloss.ranking_softmax(scores, np.where(np.isinf(scores), 1.0, labels))
        return (
            compiled.value_and_grads(ours, scores),
            compiled.value_and_grads(dropped, scores),
            optax.losses.ranking_softmax_loss(scores, labels),
            relevant,
        )

    return jax.tree.map(np.asarray, run())


def test_an_impossible_item_without_relevance_costs_nothing():
    (value, (grad,)), (expected, (expected_grad,)), optax_value, relevant = _minus_inf_scores()
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6)
    assert grad[0, 2] == 0
    assert np.isnan(optax_value)  # optax: 0 · log 0 is NaN there
    assert relevant == np.inf  # a relevant item that can never be ranked


@functools.cache
def _extreme_lists():
    # List 0: every valid score −inf, labels 0 (no softmax at all). List 1: a valid score far
    # above any softmax's, beside a padded item (lse minus the padding's score overflows).
    scores = np.array([[-np.inf, -np.inf, 0.0], [3e31, 1.0, 7.0]], np.float32)
    labels = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0]], np.float32)
    items = np.array([[True, True, False], [True, True, False]])

    @jax.jit
    def run():
        def loss(s, y, items):
            return jaxloss.ranking_softmax(s, y, item_mask=items, reduction="none")

        return (
            compiled.value_and_grads(lambda s, y: jnp.sum(loss(s, y, items)), scores, labels),
            loss(scores, labels, items),
            jaxloss.ranking_softmax(scores[:1, :2], labels[:1, :2], reduction="none"),
            jax.grad(lambda s: jaxloss.ranking_softmax(s, labels[:1, :2]))(scores[:1, :2]),
        )

    return jax.tree.map(np.asarray, run()), scores, labels, items


def test_lists_of_impossible_or_huge_scores_stay_finite():
    (_, (d_scores, d_labels)), none, unpadded, d_unpadded = _extreme_lists()[0]
    _, scores, labels, items = _extreme_lists()
    expected = ref.ranking_softmax(scores[1:].astype(np.float64), labels[1:], item_mask=items[1:])
    np.testing.assert_allclose(none[1:], expected, rtol=1e-6)
    assert none[0] == 0 and unpadded[0] == 0
    assert np.all(d_scores[0] == 0) and np.all(d_unpadded == 0)  # no softmax, no relevance
    assert np.all(np.isfinite(d_scores))
    # ∂ℓ/∂y_i = −log p_i: 3e31 − 1 for the second item of list 1; 0 for padding.
    np.testing.assert_allclose(d_labels[1], [0.0, 3e31, 0.0], rtol=1e-6)
    assert np.all(d_labels[0] == 0)


PAIR_LOSSES = {
    "pairwise_hinge_ranking": lambda d: max(0.0, 1.0 - d),
    "pairwise_logistic_ranking": lambda d: np.logaddexp(0.0, -d),
}


@functools.cache
def _pairwise_batch():
    # List 0: labels (2, 1, 0) give 3 pairs; list 1: (1, 0, 0) gives 2; list 2: all tied.
    scores = np.array([[0.3, 0.5, -0.2], [1.0, 2.0, 0.0], [4.0, 3.0, 1.0]], np.float32)
    labels = np.array([[2, 1, 0], [1, 0, 0], [1, 1, 1]], np.int32)
    weights = np.array([[2.0, 3.0, 5.0], [0.5, 7.0, 11.0], [1.0, 1.0, 1.0]], np.float32)
    nan_labels = np.array([[2, 1, 0], [1, 0, 0], [1, 1, np.nan]], np.float32)

    @jax.jit
    def run():
        out = {}
        for name in PAIR_LOSSES:
            loss = getattr(jaxloss, name)
            for reduction in ("none", "sum", "mean"):
                out[name, reduction] = loss(scores, labels, weights=weights, reduction=reduction)
            out[name, "nan"] = loss(scores, nan_labels, reduction="none")
        return out

    return scores, labels, weights, jax.tree.map(np.asarray, run())


def test_lists_of_no_items_give_zero_gradients():
    # A [lists, 0] batch: the value was 0, its gradient raised (the maximum of no item).
    scores = labels = np.zeros((2, 0), np.float32)
    grads = jax.jit(jax.grad(jaxloss.ranking_softmax, argnums=(0, 1)))(scores, labels)
    expected = jax.jit(  # one compilation
        jax.grad(lambda s, y: jnp.mean(optax.losses.ranking_softmax_loss(s, y)), argnums=(0, 1))
    )(scores, labels)
    for g, e in zip(grads, expected, strict=True):
        assert g.shape == (2, 0)
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_pairwise_mean_is_over_the_pairs_of_the_batch(name):
    scores, labels, weights, out = _pairwise_batch()
    expected = getattr(ref, name)(scores, labels, weights)
    assert expected[2] == 0  # ties form no pair
    np.testing.assert_allclose(out[name, "none"], expected, rtol=1e-6)
    np.testing.assert_allclose(out[name, "sum"], expected.sum(), rtol=1e-6)
    # rax's jnp.mean over the 5 pairs, not over the 3 lists.
    np.testing.assert_allclose(out[name, "mean"], expected.sum() / 5, rtol=1e-6)
    # A pair takes the weight of its more relevant item: list 1's pairs weigh 0.5.
    np.testing.assert_allclose(
        out[name, "none"][1], 0.5 * (PAIR_LOSSES[name](-1.0) + PAIR_LOSSES[name](1.0)), rtol=1e-6
    )


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_a_nan_label_makes_its_list_nan(name):
    # NaN orders no pair; the list's loss says so instead of silently losing its pairs.
    *_, out = _pairwise_batch()
    values = out[name, "nan"]
    assert np.isnan(values[2]) and np.all(np.isfinite(values[:2]))


def test_an_item_level_where_points_to_item_mask():
    scores, labels, items, _ = _batch()
    for loss in (jaxloss.ranking_softmax, jaxloss.pairwise_hinge_ranking):
        with pytest.raises(ValueError, match="item_mask"):
            jax.eval_shape(lambda s, loss=loss: loss(s, labels, where=items), scores)


def test_item_mask_must_be_boolean_and_of_the_lists_shape():
    scores, labels, items, _ = _batch()
    with pytest.raises(TypeError, match="`item_mask`"):
        jax.eval_shape(lambda s: jaxloss.ranking_softmax(s, labels, item_mask=1.0 * items), scores)
    with pytest.raises(ValueError, match=r"`item_mask` of shape \(6, 6\)"):
        jax.eval_shape(lambda s: jaxloss.ranking_softmax(s, labels, item_mask=items[:, :6]), scores)


@functools.cache
def _one_list_and_shared_labels():
    scores, labels, _, _ = _batch(2)

    @jax.jit
    def run():
        return (
            jaxloss.ranking_softmax(scores[0], labels[0], reduction="none"),
            jaxloss.pairwise_logistic_ranking(scores[0], labels[0], reduction="none"),
            jaxloss.ranking_softmax(scores, labels[0], reduction="none"),
        )

    return scores, labels, jax.tree.map(np.asarray, run())


def test_one_list_and_labels_broadcast_over_lists():
    scores, labels, (softmax, logistic, shared) = _one_list_and_shared_labels()
    assert softmax.shape == () and logistic.shape == ()
    np.testing.assert_allclose(softmax, ref.ranking_softmax(scores[0], labels[0]), rtol=1e-5)
    np.testing.assert_allclose(
        logistic, ref.pairwise_logistic_ranking(scores[0], labels[0]), rtol=1e-5
    )
    expected = ref.ranking_softmax(scores, np.broadcast_to(labels[0], scores.shape))
    np.testing.assert_allclose(shared, expected, rtol=1e-5, atol=1e-6)


@functools.cache
def _logistic_with_padding():
    scores, labels, items, weights = _batch(3)
    hostile = np.where(items, scores, np.nan).astype(np.float32)

    @jax.jit
    def run(scores, weights):
        def loss(s, w):
            return jaxloss.pairwise_logistic_ranking(
                s, labels, weights=w, item_mask=items, reduction="none"
            )

        return compiled.value_and_grads(loss, scores, weights)

    return (scores, labels, items, weights), jax.tree.map(np.asarray, run(hostile, weights))


def test_pairwise_logistic_reads_no_masked_item():
    # The shared suite's hostile padding runs on pairwise_hinge_ranking[items]; the logistic
    # loss shares its masking: NaN scores of masked items reach neither value nor gradient.
    (scores, labels, items, weights), (value, (grad, weights_grad)) = _logistic_with_padding()
    expected = ref.pairwise_logistic_ranking(scores, labels, weights, items)
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(grad)) and np.all(grad[~items] == 0)
    assert np.all(weights_grad[~items] == 0) and np.any(weights_grad[items] != 0)


@pytest.mark.parametrize(
    "loss", ["ranking_softmax", "pairwise_hinge_ranking", "pairwise_logistic_ranking"]
)
def test_checked_mode_refuses_negative_grades_unless_masked(loss):
    # A TF-Ranking -1 pads an item: unchecked it counts as a grade below 0 (as optax's), in
    # checked mode it is an error unless item_mask leaves it out.
    from jax.experimental import checkify

    scores = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    labels = np.array([[2, 1, 0, -1], [1, 0, -1, -1]])
    checked = jaxloss.checked(getattr(jaxloss, loss))
    with pytest.raises(checkify.JaxRuntimeError, match="relevance grades >= 0"):
        checked(scores, labels)
    np.testing.assert_allclose(
        checked(scores, labels, item_mask=labels >= 0),
        getattr(jaxloss, loss)(scores, labels, item_mask=labels >= 0),
        rtol=1e-6,
    )
