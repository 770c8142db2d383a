"""The losses and utility jaxloss took from optax: PolyLoss (Poly-1 and Poly-N), the hinge and
perceptron losses, ``smooth_labels``, and cross-entropy with classes left out by −inf
logits; and the optax defects jaxloss does not copy (``-1`` labels wrapped to the last class,
NaN or wrong gradients with respect to the labels)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from tests.classification import reference as ref

RTOL = 2e-5
REDUCTIONS = ("none", "sum", "mean")


def _logits_labels(seed, shape=(7, 5)):
    rng = np.random.default_rng(seed)
    logits = (3 * rng.normal(size=shape)).astype(np.float32)
    return logits, rng.integers(0, shape[-1], size=shape[:-1]).astype(np.int32)


def _dirichlet(seed, shape=(7, 5)):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]).astype(np.float32)


# --- -1 labels: optax reads the last class, jaxloss leaves the row out --------------------

# name: (jaxloss, optax or None, what optax computes for a -1 label). optax's cross-entropy
# gathers with take_along_axis, which wraps -1 to the last class; its multiclass hinge and
# perceptron losses one-hot the labels, and one_hot(-1) is a row of zeros, so the loss is
# max_c s_c (+ 1 for the hinge): a wrong value, counted by a mean. Its PolyLoss takes
# one-hot labels, so there a user's one_hot(-1) gives a loss of 0, also counted by a mean.
INTEGER_LABEL_LOSSES = {
    "cross_entropy": (
        jaxloss.cross_entropy,
        optax.losses.softmax_cross_entropy_with_integer_labels,
        lambda z, y: optax.losses.softmax_cross_entropy_with_integer_labels(
            z, jnp.where(y < 0, z.shape[-1] - 1, y)
        ),
    ),
    "poly_cross_entropy": (jaxloss.poly_cross_entropy, None, None),
    "multiclass_hinge": (
        jaxloss.multiclass_hinge,
        optax.losses.multiclass_hinge_loss,
        lambda z, y: jnp.where(y < 0, jnp.max(z + 1, axis=-1), 0),
    ),
    "multiclass_perceptron": (
        jaxloss.multiclass_perceptron,
        optax.losses.multiclass_perceptron_loss,
        lambda z, y: jnp.where(y < 0, jnp.max(z, axis=-1), 0),
    ),
}


@functools.cache
def _padded_labels():
    logits, labels = _logits_labels(0)
    labels[[1, 4]] = -1
    valid = labels >= 0

    @jax.jit
    def run(logits, labels, logits_valid, labels_valid):
        out = {}
        for name, (ours, theirs, read) in INTEGER_LABEL_LOSSES.items():
            out[name] = (
                ours(logits, labels, reduction="none"),
                jax.value_and_grad(ours)(logits, labels),
                ours(logits_valid, labels_valid),
                ours(logits_valid, labels_valid, reduction="none"),
            )
            if theirs is not None:
                out[name] += (theirs(logits, labels), read(logits, labels))
        return out

    return valid, run(logits, labels, logits[valid], labels[valid])


@pytest.mark.parametrize("name", sorted(INTEGER_LABEL_LOSSES))
def test_minus_one_labels_are_left_out_where_optax_reads_garbage(name):
    valid, out = _padded_labels()
    none, (mean, grad), mean_of_valid, none_of_valid, *optax_values = out[name]
    # jaxloss: the padded rows add 0, do not count in the mean, and get zero gradients.
    assert np.all(np.asarray(none)[~valid] == 0)
    np.testing.assert_allclose(np.asarray(none)[valid], none_of_valid, rtol=1e-6)
    np.testing.assert_allclose(mean, mean_of_valid, rtol=1e-6)
    assert np.all(np.asarray(grad)[~valid] == 0)
    if optax_values:
        # optax: a value for the -1 rows (see INTEGER_LABEL_LOSSES); the valid rows agree.
        values, read = map(np.asarray, optax_values)
        np.testing.assert_allclose(values[~valid], read[~valid], rtol=1e-6)
        assert np.all(values[~valid] != 0)
        np.testing.assert_allclose(np.asarray(none)[valid], values[valid], rtol=1e-6)


# --- Cross-entropy with classes left out by a -inf logit ----------------------------------


def _left_out_case(seed):
    """Logits with -inf on about a third of the classes, probability targets 0 there, and
    the same rows with those classes dropped (rows of one shape: each keeps 3 classes)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(6, 5)).astype(np.float32)
    kept = np.zeros((6, 5), bool)
    for row in kept:
        row[rng.choice(5, size=3, replace=False)] = True
    targets = np.where(kept, _dirichlet(seed, shape=(6, 5)), 0)
    targets = (targets / targets.sum(-1, keepdims=True)).astype(np.float32)
    return np.where(kept, logits, -np.inf).astype(np.float32), targets, kept


@functools.cache
def _left_out_results():
    logits, targets, kept = _left_out_case(3)
    weights = np.array([0.5, 1.0, 2.0, 1.5, 0.8], np.float32)
    dense = [logits[kept].reshape(6, 3), targets[kept].reshape(6, 3)]
    dense_weights = np.stack([weights[row] for row in kept])

    def ours(z, t, **options):
        return jaxloss.cross_entropy(z, t, reduction="none", **options)

    def dropped(z, t, w=None):
        # the cross-entropy over the classes kept, written out
        terms = t * (jax.nn.logsumexp(z, axis=-1, keepdims=True) - z)
        return jnp.sum(terms if w is None else w * terms, axis=-1)

    @jax.jit
    def run(logits, targets, dense, dense_weights, weights):
        def value_and_grads(fn, *args):
            return jax.value_and_grad(lambda *a: jnp.sum(fn(*a)), argnums=(0, 1))(*args)

        return {
            "plain": (value_and_grads(ours, logits, targets), value_and_grads(dropped, *dense)),
            "weighted": (
                value_and_grads(lambda z, t: ours(z, t, class_weights=weights), logits, targets),
                value_and_grads(lambda z, t: dropped(z, t, dense_weights), *dense),
            ),
            "vmap": jax.vmap(lambda z, t: ours(z[None], t[None])[0])(logits, targets),
            "jvp": jax.jvp(lambda z: ours(z, targets), (logits,), (jnp.ones_like(logits),)),
            "poly": value_and_grads(
                lambda z, t: jaxloss.poly_cross_entropy(z, t, reduction="none"), logits, targets
            ),
            "poly dropped": value_and_grads(
                lambda z, t: jaxloss.poly_cross_entropy(z, t, reduction="none"), *dense
            ),
            "inf": jax.value_and_grad(jaxloss.cross_entropy)(logits, _dirichlet(3, shape=(6, 5))),
        }

    return kept, run(logits, targets, dense, dense_weights, weights)


@pytest.mark.parametrize("variant", ["plain", "weighted", "poly"])
def test_classes_left_out_by_minus_inf_add_nothing_with_finite_gradients(variant):
    # A class with target 0 and logit -inf is 0 · log 0 = 0: the value and the gradients
    # are those of the same rows with the class dropped (torch and optax's
    # softmax_cross_entropy give NaN there).
    kept, out = _left_out_results()
    if variant == "poly":
        ours, expected = out["poly"], out["poly dropped"]
    else:
        ours, expected = out[variant]
    (value, (grad_logits, grad_targets)) = ours
    (expected_value, (expected_logits, expected_targets)) = expected
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    assert np.all(np.isfinite(grad_logits)) and np.all(np.isfinite(grad_targets))
    assert np.all(np.asarray(grad_logits)[~kept] == 0)
    # ∂/∂t of the cross-entropy term is 0 there by the convention; PolyLoss's ε Σ t (1 − p)
    # adds its true ε (1 − 0) = ε (the default 2).
    assert np.all(np.asarray(grad_targets)[~kept] == (2.0 if variant == "poly" else 0.0))
    np.testing.assert_allclose(np.asarray(grad_logits)[kept].reshape(6, 3), expected_logits, 1e-5)
    np.testing.assert_allclose(
        np.asarray(grad_targets)[kept].reshape(6, 3), expected_targets, 1e-5, 1e-6
    )


def test_classes_left_out_under_vmap_and_forward_mode():
    # Under vmap the batch-wide recomputation becomes a select: same values; forward mode
    # works (a custom_jvp, not a custom_vjp) and is finite.
    _, out = _left_out_results()
    value = out["plain"][0][0]
    np.testing.assert_allclose(jnp.sum(out["vmap"]), value, rtol=1e-6)
    primal, tangent = out["jvp"]
    np.testing.assert_allclose(jnp.sum(primal), value, rtol=1e-6)
    assert np.all(np.isfinite(tangent))


def test_minus_inf_logit_under_a_positive_target_is_infinite():
    _, out = _left_out_results()
    value, grad = out["inf"]
    assert float(value) == np.inf
    assert np.all(np.isfinite(grad))


@functools.cache
def _finite_results():
    # Finite inputs: the kernel gives the plain expression's value and gradients, also at
    # targets of exactly 0 (the gradient with respect to such a target is lse - z).
    logits, _ = _logits_labels(4)
    targets = _dirichlet(4)
    targets[:, 1] = 0
    targets = targets / targets.sum(-1, keepdims=True)

    def plain(z, t):
        return jnp.sum(t * (jax.nn.logsumexp(z, axis=-1, keepdims=True) - z), axis=-1)

    @jax.jit
    def run(logits, targets):
        def value_and_grads(fn):
            return jax.value_and_grad(lambda *a: jnp.sum(fn(*a)), argnums=(0, 1))(logits, targets)

        return (
            value_and_grads(lambda z, t: jaxloss.cross_entropy(z, t, reduction="none")),
            value_and_grads(plain),
        )

    return run(logits, targets)


def test_finite_results_are_those_of_the_plain_expression():
    (value, grads), (expected, expected_grads) = _finite_results()
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
    assert np.all(np.asarray(grads[1])[:, 1] != 0)


# --- PolyLoss -------------------------------------------------------------------------------

EPSILONS = (0.0, 2.0, -1.0, (1.0, -0.5), (0.5, 2.0, -1.0, 0.25))


@functools.cache
def _poly_results():
    logits, labels = _logits_labels(5, shape=(4, 3, 6))
    targets = _dirichlet(5, shape=(4, 3, 6))

    @jax.jit
    def run(logits, labels, targets):
        return {
            f"{kind} {epsilon} {reduction}": jaxloss.poly_cross_entropy(
                logits, y, epsilon=jnp.asarray(epsilon, jnp.float32), reduction=reduction
            )
            for kind, y in (("labels", labels), ("probabilities", targets))
            for epsilon in EPSILONS
            for reduction in REDUCTIONS
        } | {"cross_entropy": jaxloss.cross_entropy(logits, labels, reduction="none")}

    return (logits, labels, targets), run(logits, labels, targets)


@pytest.mark.parametrize("kind", ["labels", "probabilities"])
@pytest.mark.parametrize("epsilon", EPSILONS, ids=str)
def test_poly_n_matches_the_float64_formula(kind, epsilon):
    (logits, labels, targets), out = _poly_results()
    y = labels if kind == "labels" else targets
    expected = ref.poly_cross_entropy(logits, y, epsilon=epsilon)
    np.testing.assert_allclose(out[f"{kind} {epsilon} none"], expected, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(out[f"{kind} {epsilon} sum"], expected.sum(), rtol=RTOL)
    np.testing.assert_allclose(out[f"{kind} {epsilon} mean"], expected.mean(), rtol=RTOL)
    if epsilon == 0.0 and kind == "labels":
        np.testing.assert_allclose(out[f"{kind} {epsilon} none"], out["cross_entropy"], 1e-6)


def test_poly_errors_name_the_option():
    logits = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match=r"`epsilon`.*\(2, 2\)"):
        jaxloss.poly_cross_entropy(logits, jnp.array([0, 1]), epsilon=jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="ignore_index"):
        jaxloss.poly_cross_entropy(logits, jnp.ones((2, 3)) / 3, ignore_index=0)
    with pytest.raises(ValueError, match="`labels`"):
        jaxloss.poly_cross_entropy(logits, jnp.array([0, 1, 2]))


# --- Hinge and perceptron losses ----------------------------------------------------------


@functools.cache
def _margin_results():
    scores, labels = _logits_labels(6, shape=(5, 4, 3))
    signs = np.where(np.random.default_rng(6).uniform(size=(5, 4)) < 0.5, 1, -1).astype(np.int8)

    @jax.jit
    def run(scores, labels, signs, margin):
        classes_second = jnp.moveaxis(scores, -1, 1)
        return {
            "multiclass_hinge axis": (
                jaxloss.multiclass_hinge(classes_second, labels, axis=1, reduction="none"),
                jaxloss.multiclass_hinge(scores, labels, reduction="none"),
            ),
            "multiclass_hinge margin": jaxloss.multiclass_hinge(
                scores, labels, margin=margin, reduction="none"
            ),
            "multiclass_perceptron axis": (
                jaxloss.multiclass_perceptron(classes_second, labels, axis=1, reduction="none"),
                jaxloss.multiclass_perceptron(scores, labels, reduction="none"),
            ),
            "hinge margin": jaxloss.hinge(scores[..., 0], signs, margin=margin, reduction="none"),
            "perceptron": jaxloss.perceptron(scores[..., 0], signs, reduction="none"),
            "all masked": [
                jax.value_and_grad(fn)(scores, labels, where=jnp.zeros(labels.shape, bool))
                for fn in (jaxloss.multiclass_hinge, jaxloss.multiclass_perceptron)
            ],
        }

    return (scores, labels, signs), run(scores, labels, signs, jnp.float32(0.3))


def test_multiclass_losses_take_any_class_axis():
    _, out = _margin_results()
    for name in ("multiclass_hinge axis", "multiclass_perceptron axis"):
        moved, last = out[name]
        np.testing.assert_array_equal(moved, last)


def test_margins_may_be_traced_and_match_the_formula():
    (scores, labels, signs), out = _margin_results()
    np.testing.assert_allclose(
        out["multiclass_hinge margin"], ref.multiclass_hinge(scores, labels, margin=0.3), 1e-6
    )
    np.testing.assert_allclose(
        out["hinge margin"], ref.hinge(scores[..., 0], signs, margin=0.3), 1e-6, 1e-7
    )
    np.testing.assert_allclose(out["perceptron"], ref.perceptron(scores[..., 0], signs), 1e-6)


def test_multiclass_losses_all_masked_are_zero():
    _, out = _margin_results()
    for value, grad in out["all masked"]:
        assert float(value) == 0.0
        assert not np.any(grad)


def test_hand_worked_hinge_values():
    scores = jnp.array([[3.0, 2.5, -1.0], [0.0, 0.0, 0.0], [1.0, 4.0, 2.0]])
    labels = jnp.array([0, 1, 0])

    @jax.jit
    def run(scores, labels):
        return (
            jaxloss.multiclass_hinge(scores, labels, reduction="none"),
            jaxloss.multiclass_perceptron(scores, labels, reduction="none"),
            jax.grad(jaxloss.multiclass_perceptron)(scores[:1], labels[:1]),
        )

    hinge, perceptron, grad = run(scores, labels)
    # max(0, 1 + 2.5 - 3) = 0.5; a tie at 0 misses the margin by 1; 1 + 4 - 1 = 4.
    np.testing.assert_allclose(hinge, [0.5, 1.0, 4.0])
    np.testing.assert_allclose(perceptron, [0.0, 0.0, 3.0])
    # The label scores highest: the perceptron loss is flat there.
    np.testing.assert_array_equal(grad, 0)


# --- smooth_labels --------------------------------------------------------------------------


@functools.cache
def _smoothing_results():
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(4, 6)).astype(np.float32)
    labels = rng.integers(0, 6, size=4)
    keep = rng.uniform(size=(4, 6)) < 0.6
    keep[np.arange(4), labels] = True
    one_hot = np.eye(6, dtype=np.float32)[labels]

    @jax.jit
    def run(logits, one_hot, keep, alpha):
        smoothed = jaxloss.smooth_labels(one_hot, alpha, where=keep)
        left_out = jnp.where(keep, logits, -jnp.inf)
        return {
            "plain": jaxloss.smooth_labels(one_hot, alpha),
            "classes second": jaxloss.smooth_labels(one_hot.T, alpha, axis=0),
            "where": smoothed,
            "cross_entropy": jax.value_and_grad(jaxloss.cross_entropy)(left_out, smoothed),
            "label_smoothing": jaxloss.cross_entropy(
                logits, jnp.argmax(one_hot, -1), label_smoothing=alpha
            ),
            "smoothed probabilities": jaxloss.cross_entropy(
                logits, jaxloss.smooth_labels(one_hot, alpha)
            ),
            "half": jaxloss.smooth_labels(one_hot.astype(jnp.bfloat16), alpha),
        }

    return (one_hot, keep), run(logits, one_hot, keep, jnp.float32(0.3))


def test_smooth_labels_values():
    (one_hot, keep), out = _smoothing_results()
    np.testing.assert_allclose(out["plain"], 0.7 * one_hot + 0.3 / 6, rtol=1e-6)
    np.testing.assert_allclose(out["classes second"], np.asarray(out["plain"]).T, rtol=1e-6)
    expected = np.where(keep, 0.7 * one_hot + 0.3 / keep.sum(-1, keepdims=True), 0)
    np.testing.assert_allclose(out["where"], expected, rtol=1e-6)
    np.testing.assert_allclose(np.sum(out["where"], -1), 1.0, rtol=1e-6)
    assert out["half"].dtype == jnp.float32


def test_smooth_labels_is_label_smoothing_and_keeps_left_out_classes_at_zero():
    _, out = _smoothing_results()
    np.testing.assert_allclose(out["smoothed probabilities"], out["label_smoothing"], 1e-6)
    # Smoothed over the classes kept, the targets stay 0 where the logits are -inf.
    value, grad = out["cross_entropy"]
    assert np.isfinite(float(value)) and np.all(np.isfinite(grad))


def test_smooth_labels_errors_name_the_argument():
    labels = jnp.ones((2, 3)) / 3
    with pytest.raises(ValueError, match="`alpha`"):
        jaxloss.smooth_labels(labels, 1.5)
    with pytest.raises(TypeError, match="`labels`"):
        jaxloss.smooth_labels(jnp.array([0, 1]), 0.1)
    with pytest.raises(TypeError, match="`where`"):
        jaxloss.smooth_labels(labels, 0.1, where=jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="`where`"):
        jaxloss.smooth_labels(labels, 0.1, where=jnp.ones((3, 2), bool))
    with pytest.raises(ValueError, match="axis"):
        jaxloss.smooth_labels(labels, 0.1, axis=2)


# --- optax's sigmoid_focal_loss differentiates wrongly in the labels at 0 and 1 -----------


def test_sigmoid_focal_label_gradients_match_finite_differences_where_optax_does_not():
    logits = np.array([0.7, -1.3, 2.0, -0.4], np.float32)
    labels = np.array([0.0, 1.0, 0.35, 1.0], np.float32)

    def ours(t):
        return jaxloss.sigmoid_focal(logits, t, alpha=-1.0, reduction="sum")

    def theirs(t):
        return jnp.sum(optax.losses.sigmoid_focal_loss(logits, t))

    with jax.enable_x64(True):
        t64 = labels.astype(np.float64)
        step = 1e-6 * np.eye(4)

        # One compilation: eagerly, every operation would compile on its own.
        @jax.jit
        def run(t):
            differences = [(ours(t + e) - ours(t - e)) / 2e-6 for e in step]
            return jnp.stack(differences), jax.grad(ours)(t), jax.grad(theirs)(t)

        finite_differences, our_grad, optax_grad = jax.device_get(run(t64))
        np.testing.assert_allclose(our_grad, finite_differences, rtol=1e-6)
    assert not np.allclose(optax_grad[:2], finite_differences[:2], rtol=1e-3)
    np.testing.assert_allclose(optax_grad[2], finite_differences[2], rtol=1e-6)


def test_max_margin_gradients_share_ties_and_skip_left_out_rows():
    # The multiclass hinge and perceptron have their own derivative rule (no masked copy of
    # the scores). Expected gradients written by hand: tied maxima share the derivative
    # equally (jnp.max's rule, which optax's losses get), the label's score gets -1, and a
    # row left out (label -1, or where=False) gets 0 even with NaN and inf in it.
    scores = jnp.array(
        [
            [1.0, 3.0, 3.0, 0.0],  # label 0, classes 1 and 2 tie at the max
            [2.0, 2.0, 0.0, 0.0],  # label 1 ties with class 0 (perceptron: loss 0)
            [jnp.nan, jnp.inf, -jnp.inf, 1.0],  # label -1: left out
            [jnp.inf, jnp.nan, 0.0, 0.0],  # masked by where
        ]
    )
    labels = jnp.array([0, 1, -1, 2])
    where = jnp.array([True, True, True, False])

    @jax.jit
    def run(scores, margin):
        perceptron = jax.value_and_grad(
            lambda s: jaxloss.multiclass_perceptron(s, labels, where=where, reduction="sum")
        )(scores)
        hinge = jax.value_and_grad(
            lambda s, m: jaxloss.multiclass_hinge(
                s, labels, margin=m, where=where, reduction="sum"
            ),
            argnums=(0, 1),
        )(scores, margin)
        forward = jax.jvp(
            lambda s: jaxloss.multiclass_perceptron(s, labels, where=where, reduction="sum"),
            (scores,),
            (jnp.ones_like(scores).at[2:].set(0.0),),
        )[1]
        return perceptron, hinge, forward

    (p_value, p_grad), (h_value, (h_grad, h_margin_grad)), p_forward = run(scores, 0.5)
    assert float(p_value) == 2.0  # row 0: 3 - 1; row 1: 2 - 2
    np.testing.assert_array_equal(
        p_grad,
        [[-1, 0.5, 0.5, 0], [0.5, -0.5, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
    )
    # Hinge, margin 0.5: row 0 max 3.5 (classes 1, 2) - 1; row 1 max 2.5 (class 0) - 2.
    assert float(h_value) == 3.0
    np.testing.assert_array_equal(
        h_grad, [[-1, 0.5, 0.5, 0], [1, -1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    )
    assert float(h_margin_grad) == 2.0  # both counted rows' maxima carry the margin
    assert float(p_forward) == float(np.sum(p_grad[:2]))
