"""Regression losses: torch parity (including broadcasting, per-element weights, every layout
of the Gaussian NLL's variances and every Poisson NLL option) and large-error stability."""

from __future__ import annotations

import functools
import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from tests._suite import compiled

RTOL = 2e-5
REDUCTIONS = ["mean", "sum", "none"]
SHAPE_PAIRS = [((7, 3), (7, 3)), ((4, 5, 2), (5, 2)), ((6, 1), (1, 4))]

CASES = [
    ("mse", {}, F.mse_loss, {}),
    ("mae", {}, F.l1_loss, {}),
    ("huber", {"delta": 0.8}, F.huber_loss, {"delta": 0.8}),
    ("huber", {"delta": 2.5}, F.huber_loss, {"delta": 2.5}),
    ("smooth_l1", {"beta": 0.5}, F.smooth_l1_loss, {"beta": 0.5}),
    ("smooth_l1", {"beta": 0.0}, F.smooth_l1_loss, {"beta": 0.0}),
]


def _inputs(shapes):
    rng = np.random.default_rng(0)
    predictions = (2 * rng.normal(size=shapes[0])).astype(np.float32)
    targets = (2 * rng.normal(size=shapes[1])).astype(np.float32)
    return predictions, targets


@functools.cache
def _ours(shapes):
    """Every case and reduction of the inputs of ``shapes``, in one compilation (the tests
    check the outer product's warning on their own trace)."""
    predictions, targets = _inputs(shapes)

    @jax.jit
    def run():
        return {
            (index, reduction): getattr(jaxloss, name)(
                predictions, targets, reduction=reduction, **options
            )
            for index, (name, options, _, _) in enumerate(CASES)
            for reduction in REDUCTIONS
        }

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return jax.tree.map(np.asarray, run())


@pytest.mark.parametrize(
    "case, shapes, reduction",
    list(itertools.product(CASES, SHAPE_PAIRS, REDUCTIONS)),
    ids=lambda p: str(p[0]) if isinstance(p, tuple) and isinstance(p[0], str) else None,
)
def test_matches_torch(case, shapes, reduction):
    name, options, torch_fn, torch_options = case
    predictions, targets = _inputs(shapes)
    # (6, 1) against (1, 4): torch computes the outer product and warns; so does jaxloss
    # for the regression losses (other families refuse it), when the loss is traced (here a
    # trace of this call alone; its value comes from the compiled function of every case).
    outer = tuple(np.broadcast_shapes(*shapes)) not in shapes
    with pytest.warns(UserWarning, match="the shape of none") if outer else _no_warning():
        jax.eval_shape(
            lambda: getattr(jaxloss, name)(predictions, targets, reduction=reduction, **options)
        )
    ours = _ours(shapes)[CASES.index(case), reduction]
    with pytest.warns(UserWarning) if shapes[0] != shapes[1] else _no_warning():
        expected = torch_fn(
            torch.tensor(predictions, dtype=torch.float64),
            torch.tensor(targets, dtype=torch.float64),
            reduction=reduction,
            **torch_options,
        )
    np.testing.assert_allclose(ours, expected.numpy(), rtol=RTOL, atol=1e-6)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_log_cosh_is_stable_for_large_errors():
    predictions = np.array([1000.0, -1000.0, 1e-3, 0.0], np.float32)
    value, grad = jax.jit(  # one compilation
        jax.value_and_grad(lambda p: jaxloss.log_cosh(p, jnp.zeros(4), reduction="sum"))
    )(predictions)
    expected = 2 * (1000.0 - np.log(2.0)) + np.log(np.cosh(1e-3))
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grad, np.tanh([1000.0, -1000.0, 1e-3, 0.0]), rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    "name, width",
    [("huber", 1.0), ("huber", 10.0), ("smooth_l1", 0.0), ("smooth_l1", 1.0), ("smooth_l1", 10.0)],
)
def test_huber_and_smooth_l1_are_inf_at_an_infinite_difference_as_torch(name, width):
    # smooth_l1 with beta > 0 was NaN there (0 * inf in its L1 term) where torch and huber
    # give inf; the third and fourth entries check the finite values around it.
    option = "delta" if name == "huber" else "beta"
    loss = functools.partial(getattr(jaxloss, name), reduction="none", **{option: width})
    predictions = np.array([np.inf, -np.inf, 3.0, 1e37], np.float32)
    targets = np.zeros(4, np.float32)
    values, grad = jax.jit(  # one compilation for both
        lambda: (
            loss(predictions, targets),
            jax.grad(lambda p: loss(p, targets).sum())(predictions),
        )
    )()
    torch_fn = F.huber_loss if name == "huber" else F.smooth_l1_loss
    expected = torch_fn(
        torch.tensor(predictions, dtype=torch.float64),
        torch.tensor(targets, dtype=torch.float64),
        reduction="none",
        **{option: width},
    ).numpy()
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    slope = 1.0 if name == "smooth_l1" else width
    np.testing.assert_allclose(np.asarray(grad)[[0, 1, 3]], [slope, -slope, slope])


def test_integer_targets_are_accepted_but_not_integer_predictions():
    value = jax.jit(jaxloss.mse)(np.array([1.5, 2.0], np.float32), np.array([1, 2], np.int32))
    np.testing.assert_allclose(value, 0.125)
    with pytest.raises(TypeError, match="`predictions`"):
        jaxloss.mse(jnp.array([1, 2]), jnp.array([1.0, 2.0]))


def test_shapes_that_do_not_broadcast_name_both_arguments():
    with pytest.raises(ValueError, match=r"`predictions` \(3,\).*`targets` \(4,\)"):
        jaxloss.huber(jnp.zeros(3), jnp.zeros(4))


def test_mae_gradient_at_an_exact_match_is_zero_as_in_torch():
    grad = jax.jit(jax.grad(jaxloss.mae))(
        np.array([1.0, 2.0], np.float32), np.array([1.0, 0.0], np.float32)
    )
    np.testing.assert_allclose(grad, [0.0, 0.5])


LOG_COSH_ERRORS = [1e-4, 1e-2, 0.5, 3.9, 4.1, 30.0]


@functools.cache
def _log_cosh_of_errors():
    """``log_cosh`` of each error below (a batch of one), in one compilation."""
    errors = [np.array([e], np.float32) for e in LOG_COSH_ERRORS]
    return jax.jit(lambda: [jaxloss.log_cosh(e, jnp.zeros(1)) for e in errors])()


@pytest.mark.parametrize("error", LOG_COSH_ERRORS)
def test_log_cosh_keeps_relative_precision(error):
    value = _log_cosh_of_errors()[LOG_COSH_ERRORS.index(error)]
    np.testing.assert_allclose(value, np.log(np.cosh(error)), rtol=2e-6)


# Weighted losses, Gaussian and Poisson NLL: every JAX computation of a test runs in one
# compiled function; parametrized cases that share their inputs are computed together, once,
# by a cached function, and each case checks its own part.


def _torch_grads(fn, *arrays):
    """torch's value and gradients (float64) of ``fn(*tensors).sum()``."""
    tensors = [torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in arrays]
    value = fn(*tensors)
    value.sum().backward()
    return value.detach().numpy(), [t.grad.numpy() for t in tensors]


def _assert_matches(ours, theirs, rtol=1e-5, atol=1e-6):
    (value, grads), (expected, expected_grads) = ours, theirs
    np.testing.assert_allclose(value, expected, rtol=rtol, atol=atol)
    assert len(grads) >= len(expected_grads)
    for g, e in zip(grads, expected_grads, strict=False):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


WEIGHTED = {
    "mse": (jaxloss.mse, F.mse_loss, {}),
    "mae": (jaxloss.mae, F.l1_loss, {}),
    "huber": (jaxloss.huber, F.huber_loss, {"delta": 0.8}),
}
WEIGHTED_GRID = list(itertools.product(WEIGHTED, REDUCTIONS))


def _weighted_inputs():
    rng = np.random.default_rng(3)
    predictions, targets = (2 * rng.normal(size=(6, 4)) for _ in range(2))
    weights = rng.uniform(0.1, 2.0, size=(6, 4))
    weights[0, :2] = 0.0
    return predictions, targets, weights


def _weighted_mask():
    return np.random.default_rng(4).uniform(size=(6, 4)) < 0.6


def _weighted_loss(predictions, targets, weights, *, name, reduction, masked=False):
    fn, _, fixed = WEIGHTED[name]
    where = _weighted_mask() if masked else None
    return fn(predictions, targets, weights=weights, where=where, reduction=reduction, **fixed)


@functools.cache
def _weighted_ours():
    clean = _weighted_inputs()
    # NaN in every masked entry of every input, weights too: none may reach a number.
    poisoned = [np.where(_weighted_mask(), a, np.nan) for a in clean]
    # Weights of one row, broadcast over the features; and weights that are all 0.
    per_row = (clean[0], clean[1], clean[2][:, :1])
    zero = (clean[0], clean[1], np.zeros_like(clean[2]))
    cases = [(clean, {"name": n, "reduction": r}) for n, r in WEIGHTED_GRID]
    cases += [(poisoned, {"name": n, "reduction": r, "masked": True}) for n, r in WEIGHTED_GRID]
    cases += [(per_row, {"name": n, "reduction": r}) for n, r in WEIGHTED_GRID]
    cases += [(zero, {"name": n, "reduction": "mean"}) for n in WEIGHTED]
    return compiled.values_and_grads_of_cases(_weighted_loss, cases)


def _torch_weighted(name, reduction):
    _, torch_fn, fixed = WEIGHTED[name]
    return lambda p, t, w: torch_fn(p, t, weight=w, reduction=reduction, **fixed)


@pytest.mark.parametrize("name, reduction", WEIGHTED_GRID)
def test_weighted_losses_match_torch(name, reduction):
    # mse and l1: "mean" is Σ w·ℓ / Σ w; huber: mean(w·ℓ), divided by the count.
    index = WEIGHTED_GRID.index((name, reduction))
    theirs = _torch_grads(_torch_weighted(name, reduction), *_weighted_inputs())
    _assert_matches(_weighted_ours()[index], theirs)


@pytest.mark.parametrize("name, reduction", WEIGHTED_GRID)
def test_weighted_losses_with_where_are_torchs_on_the_kept_entries(name, reduction):
    # Masked entries leave the weighted sum and the sum of weights (or the count), and their
    # NaN reaches no value and no gradient.
    value, grads = _weighted_ours()[len(WEIGHTED_GRID) + WEIGHTED_GRID.index((name, reduction))]
    keep = _weighted_mask()
    kept = [a[keep] for a in _weighted_inputs()]
    expected, expected_grads = _torch_grads(_torch_weighted(name, reduction), *kept)
    if reduction == "none":
        expected = np.zeros(keep.shape)
        expected[keep] = _torch_grads(_torch_weighted(name, "none"), *kept)[0]
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
    for g, e in zip(grads, expected_grads, strict=True):
        assert np.all(g[~keep] == 0)
        np.testing.assert_allclose(g[keep], e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, reduction", WEIGHTED_GRID)
def test_weights_broadcast_to_the_loss(name, reduction):
    # One weight per row equals torch with that weight repeated over the features.
    value, grads = _weighted_ours()[2 * len(WEIGHTED_GRID) + WEIGHTED_GRID.index((name, reduction))]
    p, t, w = _weighted_inputs()
    expected, (grad_p, grad_t, grad_w) = _torch_grads(
        _torch_weighted(name, reduction), p, t, np.broadcast_to(w[:, :1], w.shape)
    )
    _assert_matches((value, grads[:2]), (expected, [grad_p, grad_t]))
    np.testing.assert_allclose(grads[2], grad_w.sum(1, keepdims=True), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", WEIGHTED)
def test_a_total_weight_of_zero_gives_zero_not_nan(name):
    value, grads = _weighted_ours()[3 * len(WEIGHTED_GRID) + list(WEIGHTED).index(name)]
    assert float(value) == 0.0
    for g in grads[:2]:
        assert np.all(g == 0)
    # torch divides 0 by 0 for mse and l1: NaN.
    expected = _torch_weighted(name, "mean")(
        *(torch.tensor(a) for a in (_weighted_inputs()[0], _weighted_inputs()[1], np.zeros((6, 4))))
    )
    assert np.isnan(expected.item()) == (name != "huber")


def test_weights_of_a_shape_that_does_not_broadcast_name_the_weights():
    with pytest.raises(ValueError, match=r"`weights` of shape \(4,\)"):
        jax.eval_shape(
            lambda: jaxloss.mse(jnp.zeros((3, 2)), jnp.zeros((3, 2)), weights=jnp.ones(4))
        )


# Gaussian NLL: every layout of torch's variances, with and without the constant, with an eps
# that clamps some variances (torch's gradient is then that at the clamped value).
GAUSSIAN_LAYOUTS = {
    "same": ((6, 4), (6, 4)),
    "shared": ((6, 4), (6,)),
    "last_axis_1": ((6, 4), (6, 1)),
    "middle_axis_1": ((3, 2, 4), (3, 1, 4)),
    "scalar": ((6, 4), ()),
}
GAUSSIAN_OPTIONS = [{}, {"full": True}, {"eps": 0.05}, {"full": True, "eps": 0.05}]
GAUSSIAN_GRID = list(itertools.product(GAUSSIAN_LAYOUTS, range(len(GAUSSIAN_OPTIONS)), REDUCTIONS))


def _gaussian_inputs(layout):
    shape, variance_shape = GAUSSIAN_LAYOUTS[layout]
    rng = np.random.default_rng(5)
    predictions, targets = rng.normal(size=shape), rng.normal(size=shape)
    variances = np.exp(rng.normal(size=variance_shape))
    variances = np.where(rng.uniform(size=variance_shape) < 0.3, 1e-3, variances)
    return predictions, targets, variances if variance_shape else np.float64(0.02)


@functools.cache
def _gaussian_ours():
    cases = [
        (_gaussian_inputs(layout), {**GAUSSIAN_OPTIONS[o], "reduction": r})
        for layout, o, r in GAUSSIAN_GRID
    ]
    return compiled.values_and_grads_of_cases(jaxloss.gaussian_nll, cases)


@pytest.mark.parametrize("layout, options, reduction", GAUSSIAN_GRID)
def test_gaussian_nll_matches_torch(layout, options, reduction):
    predictions, targets, variances = _gaussian_inputs(layout)
    torch_options = {**GAUSSIAN_OPTIONS[options], "reduction": reduction}
    if layout == "scalar":  # torch takes a shared variance as a Python float only
        theirs = _torch_grads(
            lambda p, t: F.gaussian_nll_loss(p, t, float(variances), **torch_options),
            predictions,
            targets,
        )
    else:
        theirs = _torch_grads(
            lambda p, t, v: F.gaussian_nll_loss(p, t, v, **torch_options),
            predictions,
            targets,
            variances,
        )
    _assert_matches(_gaussian_ours()[GAUSSIAN_GRID.index((layout, options, reduction))], theirs)


@pytest.mark.parametrize("variance_shape", [(6, 3), (6, 1, 1), (4,), (1, 1)], ids=lambda s: str(s))
def test_gaussian_nll_variances_of_a_shape_torch_refuses_are_an_error(variance_shape):
    with pytest.raises(ValueError, match=r"`variances` of shape"):
        jax.eval_shape(
            lambda: jaxloss.gaussian_nll(
                jnp.zeros((6, 4, 2)) if len(variance_shape) == 3 else jnp.zeros((6, 4)),
                jnp.zeros(()),
                jnp.ones(variance_shape),
            )
        )
    with pytest.raises(ValueError, match="var is of incorrect size"):
        F.gaussian_nll_loss(
            torch.zeros((6, 4, 2)) if len(variance_shape) == 3 else torch.zeros((6, 4)),
            torch.zeros(()),
            torch.ones(variance_shape),
        )


def test_gaussian_nll_negative_variances_are_an_error_in_checked_mode():
    from jax.experimental import checkify

    loss = jaxloss.checked(jaxloss.gaussian_nll)
    with pytest.raises(checkify.JaxRuntimeError, match="`variances` must be non-negative"):
        loss(jnp.zeros(3), jnp.ones(3), jnp.array([1.0, -1.0, 1.0]))


# Poisson NLL: every option; counts with 0 and 1 (both sides of the Stirling cut) and a
# fractional target; log-rates and rates from the same positive predictions.
POISSON_OPTIONS = [
    {"log_input": log_input, "full": full, "eps": eps}
    for log_input in (True, False)
    for full in (False, True)
    for eps in (1e-8, 0.5)
]
POISSON_GRID = list(itertools.product(range(len(POISSON_OPTIONS)), REDUCTIONS))


def _poisson_inputs():
    rng = np.random.default_rng(6)
    predictions = rng.uniform(0.1, 3.0, size=(5, 4))
    targets = rng.poisson(2.0, size=(5, 4)).astype(np.float64)
    targets[0] = [0.0, 1.0, 0.5, 7.0]
    return predictions, targets


@functools.cache
def _poisson_ours():
    cases = [(_poisson_inputs(), {**POISSON_OPTIONS[o], "reduction": r}) for o, r in POISSON_GRID]
    return compiled.values_and_grads_of_cases(jaxloss.poisson_nll, cases)


@pytest.mark.parametrize("options, reduction", POISSON_GRID)
def test_poisson_nll_matches_torch(options, reduction):
    torch_options = {**POISSON_OPTIONS[options], "reduction": reduction}
    value, (grad_predictions, grad_targets) = _poisson_ours()[
        POISSON_GRID.index((options, reduction))
    ]
    expected, (expected_predictions, expected_targets) = _torch_grads(
        lambda x, t: F.poisson_nll_loss(x, t, **torch_options), *_poisson_inputs()
    )
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad_predictions, expected_predictions, rtol=1e-4, atol=1e-5)
    # torch's target gradient with full=True is NaN at a target of 0 (0·log 0 in the backward
    # of its masked Stirling term); jaxloss's is the gradient without the term, as at t ≤ 1.
    _, (_, without_stirling) = _torch_grads(
        lambda x, t: F.poisson_nll_loss(x, t, **{**torch_options, "full": False}),
        *_poisson_inputs(),
    )
    nan = np.isnan(expected_targets)
    assert nan.any() == POISSON_OPTIONS[options]["full"]
    np.testing.assert_allclose(
        grad_targets, np.where(nan, without_stirling, expected_targets), rtol=1e-4, atol=1e-5
    )


def test_poisson_nll_adds_stirling_for_targets_above_one_only():
    # log-rate 0: e^0 − t·0 = 1, plus t log t − t + ½ log(2πt) for t = 2, and nothing for t = 1.
    loss = jax.jit(lambda x, t: jaxloss.poisson_nll(x, t, full=True, reduction="none"))(
        jnp.zeros(2), jnp.array([1.0, 2.0])
    )
    np.testing.assert_allclose(
        loss, [1.0, 1.0 + 2 * np.log(2.0) - 2 + 0.5 * np.log(4 * np.pi)], rtol=1e-6
    )
