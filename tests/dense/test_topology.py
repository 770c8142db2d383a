"""clDice: the soft skeleton against a NumPy transcription of Shit et al.'s algorithm and
MONAI's, the loss against MONAI's ``SoftclDiceLoss`` and ``SoftDiceclDiceLoss`` (values and
gradients, 2-D and 3-D), hand-worked skeletons and losses, and finite gradients at ties and
masked padding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.test_util import check_grads
from monai.losses import SoftclDiceLoss, SoftDiceclDiceLoss
from monai.losses.cldice import soft_skel

import jaxloss
from jaxloss.dense.topology import _soft_skeleton
from tests.dense import reference_topology as ref

SHAPES = {"2d": (2, 9, 7, 3), "3d": (2, 5, 6, 4, 3)}
ITERS = (0, 1, 3, 5)


def _inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=shape).astype(np.float32)
    labels = rng.integers(0, shape[-1], size=shape[:-1]).astype(np.int32)
    probs = rng.uniform(size=shape).astype(np.float32)
    return logits, labels, probs


def _first(x):
    return torch.tensor(x, dtype=torch.float64).movedim(-1, 1)


@pytest.mark.parametrize("dims", SHAPES)
def test_soft_skeleton_matches_the_paper_and_monai(dims):
    _, _, probs = _inputs(SHAPES[dims])
    ours = jax.jit(lambda p: {n: _soft_skeleton(p, n) for n in ITERS})(probs)
    for n in ITERS:
        expected = ref.soft_skeleton(probs, n)
        monai = soft_skel(_first(probs), n).movedim(1, -1).numpy()
        np.testing.assert_allclose(expected, monai, atol=1e-12, err_msg=f"num_iters={n}")
        np.testing.assert_allclose(ours[n], expected, atol=1e-6, err_msg=f"num_iters={n}")


# (MONAI options, jaxloss options); ``labels`` takes integer labels (MONAI's to_onehot_y).
MONAI_GRID = (
    ({}, {}),
    ({"iter_": 0}, {"num_iters": 0}),
    ({"iter_": 5, "smooth": 1.0}, {"num_iters": 5, "smooth": 1.0}),
    (
        {"iter_": 1, "smooth_nr": 0.1, "smooth_dr": 2.0, "include_background": False},
        {"num_iters": 1, "smooth_nr": 0.1, "smooth_dr": 2.0, "include_background": False},
    ),
    ({"sigmoid": True, "iter_": 2}, {"from_logits": "sigmoid", "num_iters": 2}),
    (
        {"softmax": True, "to_onehot_y": True, "include_background": False},
        {"from_logits": "softmax", "include_background": False, "labels": True},
    ),
)


def _monai(loss, x, labels, one_hot, options):
    x = _first(x).requires_grad_(True)
    if options.pop("to_onehot_y", False):
        target = torch.tensor(labels, dtype=torch.int64)[:, None]
        value = loss(to_onehot_y=True, reduction="none", **options)(x, target)
    else:
        value = loss(reduction="none", **options)(x, _first(one_hot))
    weights = torch.linspace(0.5, 1.5, value.numel(), dtype=torch.float64).reshape(value.shape)
    (value * weights).sum().backward()
    return value.detach().numpy(), x.grad.movedim(1, -1).numpy()


@jax.jit
def _ours(x, labels, one_hot):
    """Values ``[batch]`` and gradients of every grid entry, and of the Dice + clDice sum,
    from one compilation per shape."""

    def entry(options, alpha=None):
        options = dict(options)
        targets = labels if options.pop("labels", False) else one_hot

        def loss(x):
            cldice = jaxloss.soft_cldice(x, targets, reduction="none", **options)
            if alpha is None:
                return cldice
            dice = jaxloss.dice(x, targets, smooth_nr=1.0, smooth_dr=1.0, reduction="mean")
            return (1 - alpha) * dice + alpha * jnp.mean(cldice)

        value, pullback = jax.vjp(loss, x)
        weights = jnp.linspace(0.5, 1.5, value.size).reshape(value.shape)
        return value, pullback(weights if value.ndim else jnp.ones(()))[0]

    return [entry(ours) for _, ours in MONAI_GRID], entry({"num_iters": 2}, alpha=0.3)


@pytest.mark.parametrize("dims", SHAPES)
def test_matches_monai_values_and_gradients(dims):
    logits, labels, probs = _inputs(SHAPES[dims], seed=1)
    one_hot = np.eye(SHAPES[dims][-1], dtype=np.float32)[labels]
    # Probabilities for the plain entries, logits for the activations.
    for x in (probs, logits):
        grid, dice_cldice = _ours(x, labels, one_hot)
        for (options, _), (value, grad) in zip(MONAI_GRID, grid, strict=True):
            if (x is logits) != ("sigmoid" in options or "softmax" in options):
                continue
            expected, expected_grad = _monai(SoftclDiceLoss, x, labels, one_hot, dict(options))
            assert value.shape == expected.shape == (x.shape[0],)
            np.testing.assert_allclose(value, expected, rtol=1e-5, err_msg=str(options))
            np.testing.assert_allclose(grad, expected_grad, atol=1e-7, err_msg=str(options))
        if x is probs:
            value, grad = dice_cldice
            # MONAI's "none" broadcasts its [batch, classes, 1, ...] Dice and [batch] clDice
            # together: its "mean" is compared.
            torch_probs = _first(probs).requires_grad_(True)
            expected = SoftDiceclDiceLoss(alpha=0.3, iter_=2)(torch_probs, _first(one_hot))
            expected.backward()
            np.testing.assert_allclose(value, expected.item(), rtol=1e-5)
            expected_grad = torch_probs.grad.movedim(1, -1).numpy()
            np.testing.assert_allclose(grad, expected_grad, atol=1e-7)


def test_matches_the_reference_with_void_labels():
    logits, labels, probs = _inputs(SHAPES["2d"], seed=2)
    labels[0, :3, :2] = 255
    options = (
        {},
        {"num_iters": 4, "smooth": 0.5, "include_background": False},
        {"from_logits": "softmax", "num_iters": 2, "smooth_nr": 0.0, "smooth_dr": 0.1},
    )
    inputs = [logits if "from_logits" in o else probs for o in options]
    ours = jax.jit(
        lambda xs: [
            jaxloss.soft_cldice(x, labels, reduction="none", **o)
            for x, o in zip(xs, options, strict=True)
        ]
    )(inputs)
    for x, o, value in zip(inputs, options, ours, strict=True):
        np.testing.assert_allclose(
            value, ref.soft_cldice(x, labels, **o), rtol=1e-5, err_msg=str(o)
        )


def _bar(height=9, width=12, rows=(2, 7)):
    """A horizontal bar five pixels thick across the whole image, ``[1, H, W, 1]``."""
    image = np.zeros((1, height, width, 1), np.float32)
    image[0, rows[0] : rows[1]] = 1
    return image


def test_thick_bar_skeleton_is_its_centre_line():
    bar = _bar()
    line = np.zeros_like(bar)
    line[0, 4] = 1
    # A rod of 5 × 5 voxels along the depth axis: its centre line in 3-D.
    rod = np.zeros((1, 8, 9, 9, 1), np.float32)
    rod[0, :, 2:7, 2:7] = 1
    rod_line = np.zeros_like(rod)
    rod_line[0, :, 4, 4] = 1
    bars, rods = jax.jit(
        lambda b, r: ({n: _soft_skeleton(b, n) for n in (1, 2, 6)}, _soft_skeleton(r, 3))
    )(bar, rod)
    # One erosion round does not reach the middle of a bar of radius 2: nothing is kept.
    np.testing.assert_array_equal(bars[1], np.zeros_like(bar))
    np.testing.assert_array_equal(bars[2], line)
    np.testing.assert_array_equal(bars[6], line)
    np.testing.assert_array_equal(rods, rod_line)


def test_a_thin_prediction_of_a_thick_vessel_costs_nothing_and_a_gap_costs():
    bar = _bar()
    line = np.zeros_like(bar)
    line[0, 4] = 1
    broken = line.copy()
    broken[0, 4, 6] = 0

    @jax.jit
    def run(bar, line, broken):
        return {
            "line": jaxloss.soft_cldice(line, bar),
            "broken": jaxloss.soft_cldice(broken, bar),
            "dice": jaxloss.dice(line, bar),
        }

    out = run(bar, line, broken)
    # The line is its own skeleton and lies inside the bar; the bar's skeleton is the line:
    # T_prec = T_sens = (12 + 1) / (12 + 1).
    np.testing.assert_allclose(out["line"], 1 - 2 / (2 + 1e-4), atol=1e-7)
    # The gap removes one of the bar's 12 skeleton pixels from the prediction: T_sens = 12/13.
    sensitivity = 12 / 13
    np.testing.assert_allclose(
        out["broken"], 1 - 2 * sensitivity / (1 + sensitivity + 1e-4), rtol=1e-5
    )
    # Dice, which counts pixels, finds the perfect centre line two-thirds wrong.
    np.testing.assert_allclose(out["dice"], 1 - 2 * 12 / (12 + 60), rtol=1e-5)


def _authors_cldice(probs, one_hot, num_iters, smooth, exclude_background):
    """jocpae/clDice's ``soft_cldice``: one value for the batch, no smoothing in the
    harmonic mean."""
    p, t = np.asarray(probs, np.float64), np.asarray(one_hot, np.float64)
    if exclude_background:
        p, t = p[..., 1:], t[..., 1:]
    skeleton_p, skeleton_t = ref.soft_skeleton(p, num_iters), ref.soft_skeleton(t, num_iters)
    precision = ((skeleton_p * t).sum() + smooth) / (skeleton_p.sum() + smooth)
    sensitivity = ((skeleton_t * p).sum() + smooth) / (skeleton_t.sum() + smooth)
    return 1 - 2 * precision * sensitivity / (precision + sensitivity)


def test_the_authors_batch_value_is_the_folded_batch():
    _, labels, probs = _inputs(SHAPES["3d"], seed=3)
    one_hot = np.eye(SHAPES["3d"][-1], dtype=np.float32)[labels]

    def fold(x):
        return jnp.moveaxis(x, 0, -2).reshape(1, *x.shape[1:-1], -1)

    @jax.jit
    def run(probs, one_hot):
        return [
            jaxloss.soft_cldice(
                fold(probs), fold(one_hot), smooth_nr=1.0, smooth_dr=1.0, smooth=0.0
            ),
            jaxloss.soft_cldice(
                fold(probs[..., 1:]), fold(one_hot[..., 1:]), num_iters=2, smooth=0.0
            ),
        ]

    folded, folded_excluded = run(probs, one_hot)
    np.testing.assert_allclose(folded, _authors_cldice(probs, one_hot, 3, 1.0, False), rtol=1e-5)
    np.testing.assert_allclose(
        folded_excluded, _authors_cldice(probs, one_hot, 2, 1.0, True), rtol=1e-5
    )


def test_gradients_are_finite_at_ties_and_padding_is_not_read():
    shape = SHAPES["2d"]
    _, labels, probs = _inputs(shape, seed=4)
    binary = np.eye(shape[-1], dtype=np.float32)[labels]
    hostile = probs.copy()
    hostile[1] = np.nan
    void = labels.copy()
    void[0, 0] = 255
    hostile_void = probs.copy()
    hostile_void[0, 0] = np.inf
    where = np.array([True, False])

    @jax.jit
    def run(binary, hostile, hostile_void, alone):
        def grad(x, targets, **options):
            return jax.value_and_grad(lambda x: jaxloss.soft_cldice(x, targets, **options))(x)

        return {
            "binary": grad(binary, labels),
            "zeros": grad(jnp.zeros_like(binary), labels, smooth_nr=0.0, smooth_dr=0.0, smooth=0.0),
            "masked": grad(hostile, labels, where=where),
            "logits": grad(hostile, labels, where=where, from_logits="softmax"),
            "void": grad(hostile_void, void),
            "alone": jaxloss.soft_cldice(alone, labels[:1]),
        }

    out = jax.tree.map(np.asarray, run(binary, hostile, hostile_void, probs[:1]))
    masked_alone = out.pop("alone")
    for name, (value, grad) in out.items():
        assert np.isfinite(value) and np.all(np.isfinite(grad)), name
    np.testing.assert_allclose(out["binary"][0], 1 - 2 / (2 + 1e-4), atol=1e-7)
    np.testing.assert_array_equal(out["masked"][1][1], 0)
    np.testing.assert_array_equal(out["void"][1][0, 0], 0)
    # An empty prediction shares nothing with the target: T_prec = 1 (no skeleton to be
    # wrong), T_sens = 0, the loss 1 − 0 / 1.
    np.testing.assert_allclose(out["zeros"][0], 1.0)
    np.testing.assert_allclose(out["masked"][0], masked_alone, rtol=1e-6)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"num_iters": -1}, "num_iters"),
        ({"num_iters": 1.5}, "num_iters"),
        ({"num_iters": True}, "num_iters"),
        ({"smooth": -1.0}, "smooth"),
        ({"smooth_nr": -1.0}, "smooth_nr"),
        ({"from_logits": "relu"}, "from_logits"),
    ],
)
def test_option_errors(options, error):
    _, labels, probs = _inputs(SHAPES["2d"])
    with pytest.raises(ValueError, match=error):
        jaxloss.soft_cldice(probs, labels, **options)


def test_shape_errors():
    _, labels, probs = _inputs(SHAPES["2d"])
    with pytest.raises(ValueError, match="spatial axis"):
        jaxloss.soft_cldice(probs[:, 0, 0], labels[:, 0, 0])
    with pytest.raises(ValueError, match="targets"):
        jaxloss.soft_cldice(probs, labels[:, :-1])


def _window_reference(x, axes, largest):
    """Float64 windows of 3 (a cross over ``axes``), the derivative matrix of each output
    with respect to each input: 1 at the first window entry holding the extremum, in the
    order pixel, then before and after along each axis; a NaN is the extremum."""
    x = np.asarray(x, np.float64)
    flat = x.reshape(-1)
    value = np.empty_like(flat)
    jacobian = np.zeros((flat.size, flat.size))
    for i, index in enumerate(np.ndindex(x.shape)):
        window = [index]
        for axis in axes:
            for step in (-1, 1):
                neighbour = list(index)
                neighbour[axis] = min(max(index[axis] + step, 0), x.shape[axis] - 1)
                window.append(tuple(neighbour))
        entries = [x[w] for w in window]
        if np.isnan(entries).any():
            chosen = int(np.flatnonzero(np.isnan(entries))[0])
        else:
            chosen = int(np.argmax(entries) if largest else np.argmin(entries))
        value[i] = entries[chosen]
        jacobian[i, np.ravel_multi_index(window[chosen], x.shape)] = 1.0
    return value.reshape(x.shape), jacobian


@pytest.mark.parametrize("largest", [False, True])
def test_pool_kernel_routes_the_derivative_through_the_chosen_pixel(largest):
    # The kernel of the skeleton's erosion (a cross over both axes) and dilation (one axis):
    # values, the forward-mode Jacobian and the reverse-mode one against float64, with ties
    # (a quantized map: equal neighbours everywhere, the whole derivative to one pixel) and
    # a NaN that wins its windows.
    from jaxloss._kernels.pools import window_extremum

    rng = np.random.default_rng(7)
    x = np.round(rng.uniform(size=(2, 5, 4, 1)) * 3).astype(np.float32) / 3
    x[1, 2, 1, 0] = np.nan
    for axes in ((1, 2), (2,)):
        value, jacobian = _window_reference(x, axes, largest)

        def pool(x, axes=axes):
            return window_extremum(x, axes, largest)

        @jax.jit
        def run(x):
            forward = jax.jacfwd(pool)(x).reshape(x.size, x.size)
            backward = jax.jacrev(pool)(x).reshape(x.size, x.size)
            return pool(x), forward, backward

        ours, forward, backward = run(x)
        np.testing.assert_array_equal(ours, value)
        np.testing.assert_array_equal(forward, jacobian)
        np.testing.assert_array_equal(backward, jacobian)


def test_pool_kernel_has_second_derivatives():
    # Hessian-vector products (forward over reverse) differentiate the derivative rule
    # itself: a pool's square, chained, against finite differences to second order in both
    # modes, away from ties (float64 uniform values).
    from jaxloss._kernels.pools import window_extremum

    def chain(x):
        eroded = window_extremum(x, (1, 2), largest=False)
        return jnp.sum(window_extremum(eroded, (1,), largest=True) ** 2 * x)

    x = np.random.default_rng(3).uniform(size=(2, 5, 4, 2))
    with jax.enable_x64(True):
        check_grads(jax.jit(chain), (x,), order=2, modes=("fwd", "rev"))


def test_pool_kernel_leaves_an_undifferentiated_input_to_elementwise_code():
    # Without a derivative the pool is the extremum of the shifted copies, elementwise: a
    # closed-over target's skeleton is constant-folded by XLA, which takes minutes for the
    # reduction that also returns the chosen pixel (42 s at 2 x 32³ x 4 with num_iters=0).
    from jaxloss._kernels.pools import window_extremum

    target = jnp.ones((2, 6, 6, 2))
    hlo = jax.jit(lambda: window_extremum(target, (1, 2), largest=False)).lower().as_text()
    assert "stablehlo.reduce" not in hlo
    # Differentiated, the reduction is there (the assertion above can fail).
    tangent = jax.jit(lambda x: jax.jvp(lambda x: window_extremum(x, (1, 2), False), (x,), (x,)))
    assert "stablehlo.reduce" in tangent.lower(target).as_text()


def test_a_numpy_int_is_an_int():
    # As ssim's window_size: np.int64(3) was refused as "not a non-negative int".
    _, labels, probs = _inputs(SHAPES["2d"])
    iterations = jax.jit(jaxloss.soft_cldice, static_argnames="num_iters")
    np.testing.assert_array_equal(
        iterations(probs, labels, num_iters=np.int64(3)),
        iterations(probs, labels, num_iters=np.int64(3).item()),
    )
