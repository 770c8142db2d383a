"""DistiLLM's skew KL and the total variation distance: hand-worked values, the α endpoints
against ``distill_kl``, ruled-out vocabulary entries and option errors."""

from __future__ import annotations

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
    value = jaxloss.skew_kl(STUDENT, TEACHER, alpha=alpha, direction=direction)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_tvd_hand_worked():
    np.testing.assert_allclose(float(jaxloss.tvd(STUDENT, TEACHER)), 0.4, rtol=1e-6)
    # Disjoint supports are the maximum, 1; equal distributions give 0.
    disjoint = jaxloss.tvd(jnp.array([0.0, -jnp.inf]), jnp.array([-jnp.inf, 0.0]))
    assert float(disjoint) == 1.0
    assert float(jaxloss.tvd(TEACHER, TEACHER + 3.0)) == pytest.approx(0.0, abs=1e-7)


def _logits(seed: int) -> tuple[jax.Array, jax.Array]:
    rng = np.random.default_rng(seed)
    return (
        jnp.asarray(rng.normal(size=(2, 5, 7)), jnp.float32),
        jnp.asarray(2 * rng.normal(size=(2, 5, 7)), jnp.float32),
    )


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("traced", [False, True], ids=["python", "traced"])
def test_alpha_0_is_distill_kl_and_alpha_1_is_0(direction, traced):
    student, teacher = _logits(0)

    def loss(fn, alpha=None):
        kwargs = {"direction": direction, "temperature": 1.7, "reduction": "none"}
        if alpha is not None:
            kwargs["alpha"] = jnp.float32(alpha) if traced else alpha
        return jax.value_and_grad(lambda s, t: fn(s, t, **kwargs).sum(), argnums=(0, 1))(
            student, teacher
        )

    kl, kl_grads = loss(jaxloss.distill_kl)
    skew_0, skew_0_grads = loss(jaxloss.skew_kl, 0.0)
    np.testing.assert_allclose(skew_0, kl, rtol=1e-6)
    for got, want in zip(skew_0_grads, kl_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    skew_1, skew_1_grads = loss(jaxloss.skew_kl, 1.0)
    assert float(skew_1) == pytest.approx(0.0, abs=1e-6)
    for g in skew_1_grads:
        np.testing.assert_allclose(g, 0.0, atol=1e-6)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_skew_kl_is_finite_where_entries_are_ruled_out(direction):
    # Word 0: the student rules it out; word 1: the teacher; word 2: both. KL itself is
    # +inf in either direction here; the mixture keeps it finite for α > 0.
    student = jnp.array([-jnp.inf, 0.5, -jnp.inf, 1.0, -0.3])
    teacher = jnp.array([1.2, -jnp.inf, -jnp.inf, 0.1, 0.4])
    assert not np.isfinite(float(jaxloss.distill_kl(student, teacher, direction=direction)))
    value, grads = jax.value_and_grad(
        lambda s, t: jaxloss.skew_kl(s, t, alpha=0.1, direction=direction), argnums=(0, 1)
    )(student, teacher)
    assert np.isfinite(float(value)) and float(value) <= -math.log(0.1)
    for g in grads:
        assert np.all(np.isfinite(g))
    value, grads = jax.value_and_grad(jaxloss.tvd, argnums=(0, 1))(student, teacher)
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
