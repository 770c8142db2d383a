"""torch's margin losses of the classification family (``multi_margin``, ``multilabel_margin``,
``multilabel_soft_margin``, ``hinge_embedding``): what neither the shared suite nor the peer
catalogue (``tests/classification/peers.py``: every option and reduction against torch) can
know. Hand-worked values, the labels torch rejects, target lists' padding, the kinks'
gradients. Each test compiles one function."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.experimental import checkify

import jaxloss
from tests._suite import compiled

RTOL = 2e-5  # float32 jaxloss against float64 torch


def _torch_value_and_grad(fn, x, *args):
    """torch's float64 value of ``fn(x, *args)`` and the gradient of its sum."""
    x = torch.tensor(np.asarray(x), dtype=torch.float64, requires_grad=True)
    value = fn(x, *args)
    value.sum().backward()
    return value.detach().numpy(), x.grad.numpy()


def _assert_matches(ours, theirs, err_msg=""):
    """Values and gradients against torch's, gradients relative to their largest entry."""
    for got, expected in zip(ours, theirs, strict=True):
        scale = max(1.0, float(np.abs(expected).max(initial=0)))
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-6 * scale, err_msg=err_msg)


def test_multi_margin_hand_worked():
    # torch's documented example: margins 0.3, 0.4, 0.6 against the label's 0.8.
    logits = np.array([[0.1, 0.2, 0.4, 0.8]], np.float32)
    labels = np.array([3])
    weights = np.array([1.0, 1.0, 1.0, 2.0], np.float32)

    @jax.jit
    def run(logits, labels, weights):
        loss = functools.partial(jaxloss.multi_margin, logits, labels)
        return [
            loss(),
            loss(p=2),
            loss(margin=0.5),
            loss(class_weights=weights),
            loss(class_weights=weights, reduction="none"),
        ]

    hinge, squared, small_margin, weighted, weighted_none = run(logits, labels, weights)
    np.testing.assert_allclose(hinge, (0.3 + 0.4 + 0.6) / 4, rtol=1e-6)
    np.testing.assert_allclose(squared, (0.09 + 0.16 + 0.36) / 4, rtol=1e-6)
    np.testing.assert_allclose(small_margin, 0.1 / 4, rtol=1e-5)
    # torch's mean is plain even with class weights: 2 × 0.325 / 1 sample, not / weight 2.
    np.testing.assert_allclose(weighted, 0.65, rtol=1e-6)
    np.testing.assert_allclose(weighted_none, [0.65], rtol=1e-6)


def test_multi_margin_excludes_labels_torch_rejects():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 4)).astype(np.float32)
    logits[1] = np.nan  # a row whose label is out of range: never read
    labels = np.array([0, -1, 3, 4, 2, -100, 1])
    weights = rng.uniform(0.5, 2.0, size=4).astype(np.float32)
    where = np.array([True, True, True, True, True, True, False])
    valid = (labels >= 0) & (labels < 4) & where
    options = {"p": 2, "margin": 0.7, "class_weights": weights}

    @jax.jit
    def run(logits, labels, where, nothing):
        def loss(x, where=where, reduction="mean"):
            return jaxloss.multi_margin(x, labels, where=where, reduction=reduction, **options)

        out = {
            reduction: compiled.value_and_grads(
                functools.partial(loss, reduction=reduction), logits
            )
            for reduction in ("none", "mean", "sum")
        }
        out["nothing"] = jax.value_and_grad(functools.partial(loss, where=nothing))(logits)
        return out

    # NumPy arrays: indexed with masks below (a compiled gather each on jax arrays).
    out = jax.device_get(run(logits, labels, where, np.zeros(7, bool)))
    theirs = {
        reduction: _torch_value_and_grad(
            lambda x, reduction=reduction: F.multi_margin_loss(
                x,
                torch.tensor(labels[valid]),
                weight=torch.tensor(weights, dtype=torch.float64),
                reduction=reduction,
                **{k: v for k, v in options.items() if k != "class_weights"},
            ),
            logits[valid],
        )
        for reduction in ("none", "mean", "sum")
    }
    for reduction, (value, (grad,)) in ((r, out[r]) for r in ("none", "mean", "sum")):
        expected, expected_grad = theirs[reduction]
        if reduction == "none":
            assert np.all(value[~valid] == 0)
            value = value[valid]
        assert np.all(grad[~valid] == 0), reduction
        _assert_matches([value, grad[valid]], [expected, expected_grad], reduction)
    value, grad = out["nothing"]
    assert float(value) == 0.0 and np.all(np.asarray(grad) == 0)


def test_multilabel_margin_hand_worked_and_what_it_does_not_read():
    # torch's documented example: targets 3 and 0 against classes 1 and 2.
    logits = np.array([[0.1, 0.2, 0.4, 0.8], [0.3, -0.2, 0.5, 0.0]], np.float32)
    torch_form = np.array([[3, 0, -1, -1], [-1, -1, -1, -1]])  # the second list is empty
    junk_after_the_end = np.array([[3, 0, -1, 99], [-7, 2, 40, 1]])
    short = torch_form[:, :2]  # as many slots as the longest list: the same loss
    with_unknown_ids = np.array([[3, 9, 0, -1], [4, -1, 2, 2]])  # ids past the classes

    @jax.jit
    def run(logits, *variants):
        return [
            compiled.value_and_grads(jaxloss.multilabel_margin, logits, targets, argnums=(0,))
            for targets in variants
        ]

    results = run(logits, torch_form, junk_after_the_end, short, with_unknown_ids)
    value, (grad,) = results[0]
    np.testing.assert_allclose(value, 0.85 / 2, rtol=1e-6)  # the empty list counts, as 0
    _, expected_grad = _torch_value_and_grad(
        F.multilabel_margin_loss, logits, torch.tensor(torch_form)
    )
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-7)
    for other_value, (other_grad,) in results[1:]:
        np.testing.assert_allclose(other_value, value, rtol=1e-6)
        np.testing.assert_allclose(other_grad, grad, rtol=1e-6, atol=1e-7)


def test_multilabel_margin_counts_repeated_ids_twice_as_torch():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 5)).astype(np.float32)
    targets = np.array([[2, 2, 0, -1, 1], [4, 4, 4, 4, 4], [1, 3, 0, 2, 4]])
    value, (grad,) = jax.jit(
        lambda x, t: compiled.value_and_grads(
            functools.partial(jaxloss.multilabel_margin, reduction="none"), x, t, argnums=(0,)
        )
    )(logits, targets)
    theirs = _torch_value_and_grad(
        functools.partial(F.multilabel_margin_loss, reduction="none"),
        logits,
        torch.tensor(np.where(np.cumsum(targets < 0, axis=1) > 0, -1, targets)),
    )
    _assert_matches([value, grad], theirs)
    assert float(value[2]) == 0.0  # every class a target: no pair


def test_multilabel_margin_checked_mode_rejects_listed_ids_past_the_classes():
    logits = jnp.zeros((2, 4))
    loss = jaxloss.checked(jaxloss.multilabel_margin)
    with pytest.raises(checkify.JaxRuntimeError, match="`targets` must be class ids"):
        loss(logits, jnp.array([[1, 4, -1, 0], [0, -1, 0, 0]]))
    # After a list's end, or in a masked row, anything goes.
    np.testing.assert_allclose(
        loss(logits, jnp.array([[1, -1, 9, -3], [7, -1, 0, 0]]), where=jnp.array([True, False])),
        3 / 4,
    )


def test_multilabel_soft_margin_with_per_sample_weights_and_masked_rows():
    # torch's weight broadcasts against the logits: [N, C] weights too.
    rng = np.random.default_rng(2)
    logits = (3 * rng.normal(size=(6, 4))).astype(np.float32)
    targets = (rng.uniform(size=(6, 4)) < 0.5).astype(np.float32)
    weights = rng.uniform(0.2, 2.0, size=(6, 4)).astype(np.float32)
    keep = np.array([True, False, True, True, False, True])
    logits[~keep] = np.inf  # masked rows are never read

    @jax.jit
    def run(logits, targets, weights, keep):
        return compiled.value_and_grads(
            lambda x: jaxloss.multilabel_soft_margin(x, targets, class_weights=weights, where=keep),
            logits,
        )

    value, (grad,) = jax.device_get(run(logits, targets, weights, keep))
    theirs = _torch_value_and_grad(
        lambda x: F.multilabel_soft_margin_loss(
            x, torch.tensor(targets[keep]), weight=torch.tensor(weights[keep])
        ),
        logits[keep],
    )
    _assert_matches([value, grad[keep]], theirs)
    assert np.all(grad[~keep] == 0)


def test_hinge_embedding_other_targets_and_the_kink_as_torch():
    # Targets other than ±1 get both terms; at inputs = margin the gradient is -1 (torch's
    # clamp_min), for -1 targets and the others alike.
    inputs = np.array([-0.5, 0.3, 1.0, 2.0, 0.5, 1.0, 1.0, -2.0], np.float32)
    targets = np.array([0.0, 0.5, -1.0, 2.0, -1.0, 3.0, 1.0, 1.0], np.float32)
    value, (grad,) = jax.jit(
        lambda x, t: compiled.value_and_grads(
            functools.partial(jaxloss.hinge_embedding, reduction="none"), x, t, argnums=(0,)
        )
    )(inputs, targets)
    theirs = _torch_value_and_grad(
        functools.partial(F.hinge_embedding_loss, reduction="none"),
        inputs,
        torch.tensor(targets, dtype=torch.float64),
    )
    _assert_matches([value, grad], theirs)
    np.testing.assert_array_equal(np.asarray(grad)[[2, 5]], [-1.0, 0.0])


def test_errors_name_the_argument():
    logits = jnp.zeros((4, 3))
    labels = jnp.zeros(4, jnp.int32)
    with pytest.raises(ValueError, match="`p` must be 1 or 2"):
        jaxloss.multi_margin(logits, labels, p=3)
    with pytest.raises(ValueError, match=r"`class_weights`.*\(3,\)"):
        jaxloss.multi_margin(logits, labels, class_weights=jnp.ones(4))
    with pytest.raises(ValueError, match=r"`labels`.*\(4,\).*\(5,\)"):
        jaxloss.multi_margin(logits, jnp.zeros(5, jnp.int32))
    with pytest.raises(ValueError, match=r"`targets`.*\(4,\).*\(5, 3\)"):
        jaxloss.multilabel_margin(logits, jnp.zeros((5, 3), jnp.int32))
    with pytest.raises(TypeError, match="`targets`"):
        jaxloss.multilabel_margin(logits, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"`logits`.*`targets`"):
        jaxloss.multilabel_soft_margin(logits, jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="`class_weights`"):
        jaxloss.multilabel_soft_margin(logits, jnp.zeros((4, 3)), class_weights=jnp.ones(2))
    with pytest.raises(ValueError, match=r"`inputs`.*`targets`"):
        jaxloss.hinge_embedding(jnp.zeros(3), jnp.ones(2))
