"""DistiLLM's skew KL and the total variation distance: hand-worked values, the α endpoints
against ``distill_kl``, ruled-out vocabulary entries and option errors."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

# One token over two words: student (0.5, 0.5), teacher (0.9, 0.1).
STUDENT = jnp.log(jnp.array([0.5, 0.5]))
TEACHER = jnp.log(jnp.array([0.9, 0.1]))


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)


@functools.cache
@jax.jit
def _skew_kl_by_hand():
    """The cases below in one compilation."""
    return {
        (alpha, direction): jaxloss.skew_kl(STUDENT, TEACHER, alpha=alpha, direction=direction)
        for alpha in (0.1, 0.5)
        for direction in ("forward", "reverse")
    }


@pytest.mark.parametrize(
    ("alpha", "direction", "expected"),
    [
        # forward: KL(p ‖ α p + (1 − α) q); reverse: KL(q ‖ α q + (1 − α) p).
        (0.1, "forward", _kl((0.9, 0.1), (0.54, 0.46))),
        (0.5, "forward", 0.9 * math.log(0.9 / 0.7) + 0.1 * math.log(0.1 / 0.3)),
        (0.1, "reverse", 0.5 * math.log(0.5 / 0.86) + 0.5 * math.log(0.5 / 0.14)),
        (0.5, "reverse", 0.5 * math.log(0.5 / 0.7) + 0.5 * math.log(0.5 / 0.3)),
    ],
    ids=["forward-0.1", "forward-0.5", "reverse-0.1", "reverse-0.5"],
)
def test_skew_kl_hand_worked(alpha, direction, expected):
    value = _skew_kl_by_hand()[alpha, direction]
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_tvd_hand_worked():
    left = np.array([0.0, -np.inf], np.float32)
    right = np.array([-np.inf, 0.0], np.float32)
    value, disjoint, equal = jax.jit(  # one compilation for the three
        lambda: (
            jaxloss.tvd(STUDENT, TEACHER),
            jaxloss.tvd(left, right),
            jaxloss.tvd(TEACHER, TEACHER + 3.0),
        )
    )()
    np.testing.assert_allclose(float(value), 0.4, rtol=1e-6)
    # Disjoint supports are the maximum, 1; equal distributions give 0.
    assert float(disjoint) == 1.0
    assert float(equal) == pytest.approx(0.0, abs=1e-7)


def _logits(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)  # NumPy: no compilation
    return (
        rng.normal(size=(2, 5, 7)).astype(np.float32),
        (2 * rng.normal(size=(2, 5, 7))).astype(np.float32),
    )


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("traced", [False, True], ids=["python", "traced"])
def test_alpha_0_is_distill_kl_and_alpha_1_is_0(direction, traced):
    student, teacher = _logits(0)
    # Array α made here and closed over below (the path of an array α, as eagerly).
    alphas = {a: jnp.float32(a) if traced else a for a in (0.0, 1.0)}

    def loss(fn, alpha=None):
        kwargs = {"direction": direction, "temperature": 1.7, "reduction": "none"}
        if alpha is not None:
            kwargs["alpha"] = alphas[alpha]
        return jax.value_and_grad(lambda s, t: fn(s, t, **kwargs).sum(), argnums=(0, 1))(
            student, teacher
        )

    # One compilation for the three.
    (kl, kl_grads), (skew_0, skew_0_grads), (skew_1, skew_1_grads) = jax.jit(
        lambda: (loss(jaxloss.distill_kl), loss(jaxloss.skew_kl, 0.0), loss(jaxloss.skew_kl, 1.0))
    )()
    np.testing.assert_allclose(skew_0, kl, rtol=1e-6)
    for got, want in zip(skew_0_grads, kl_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert float(skew_1) == pytest.approx(0.0, abs=1e-6)
    for g in skew_1_grads:
        np.testing.assert_allclose(g, 0.0, atol=1e-6)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_skew_kl_is_finite_where_entries_are_ruled_out(direction):
    # Word 0: the student rules it out; word 1: the teacher; word 2: both. KL itself is
    # +inf in either direction here; the mixture keeps it finite for α > 0.
    student = np.array([-np.inf, 0.5, -np.inf, 1.0, -0.3], np.float32)
    teacher = np.array([1.2, -np.inf, -np.inf, 0.1, 0.4], np.float32)

    @jax.jit  # one compilation for every value and gradient below
    def run():
        return (
            jaxloss.distill_kl(student, teacher, direction=direction),
            jax.value_and_grad(
                lambda s, t: jaxloss.skew_kl(s, t, alpha=0.1, direction=direction), argnums=(0, 1)
            )(student, teacher),
            jax.value_and_grad(jaxloss.tvd, argnums=(0, 1))(student, teacher),
        )

    kl, skew, tvd = run()
    assert not np.isfinite(float(kl))
    value, grads = skew
    assert np.isfinite(float(value)) and float(value) <= -math.log(0.1)
    for g in grads:
        assert np.all(np.isfinite(g))
    value, grads = tvd
    assert np.isfinite(float(value))
    for g in grads:
        assert np.all(np.isfinite(g))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_skew_kl_rejects_alpha_outside_0_1(alpha):
    with pytest.raises(ValueError, match="alpha"):
        jaxloss.skew_kl(STUDENT, TEACHER, alpha=alpha)


def test_skew_kl_rejects_unknown_direction():
    with pytest.raises(ValueError, match="direction"):
        jaxloss.skew_kl(STUDENT, TEACHER, direction="backward")


@pytest.mark.parametrize("fn", [jaxloss.skew_kl, jaxloss.tvd], ids=["skew_kl", "tvd"])
def test_shape_and_temperature_errors(fn):
    with pytest.raises(ValueError, match="temperature"):
        fn(STUDENT, TEACHER, temperature=0.0)
    with pytest.raises(ValueError):
        fn(STUDENT, jnp.zeros(3))
