"""Property-based tests (hypothesis) over every registered loss.

The cases (``tests/<family>/cases.py``) give each loss valid inputs at a normal scale; here
hypothesis draws the batch size, the dtype (float16, bfloat16, float32), a seed, masks and
an extreme *scale* applied to the inputs that may take any real value (logits,
embeddings, predictions, scores, log-probabilities): 0 (zero vectors, identical
embeddings, zero distances), 1e-3, 1, 1e2 and 1e4. Properties:

* values (float32) are finite at every scale; gradients are finite wherever they are
  representable (float32 at every scale, half precision up to scale 1);
* losses that are non-negative by definition are;
* permuting the batch does not change the mean;
* ``where`` with a random mask (possibly empty) equals dropping the masked rows;
* ``"sum"`` equals ``"mean"`` times the number of counted entries;
* margin-softmax losses do not depend on the scale of the embeddings or the centers, and
  are finite, with finite gradients, at θ = 0 and θ = π;
* CTC is finite (or a documented inf) for zero-length labels and inputs.

Examples are derandomized (the same on every run: CI cannot flake); ``EXAMPLES`` says how
many each property draws per loss.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import jaxloss
from tests._suite.compiled import BATCH, probe
from tests._suite.registry import REGISTRY, Case, batched_positions, reference_mean, row_mask

EXAMPLES = 5
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
NAMES = sorted(REGISTRY)
DTYPES = {"float16": jnp.float16, "bfloat16": jnp.bfloat16, "float32": jnp.float32}
SCALES = (0.0, 1e-3, 1.0, 1e2, 1e4)


def _inputs(name: str, batch: int, seed: int, scale: float = 1.0, dtype=jnp.float32):
    args = list(REGISTRY[name].make_inputs(np.random.default_rng(seed), batch))
    for i, a in enumerate(args):
        if not np.issubdtype(np.asarray(a).dtype, np.floating):
            continue
        if i in REGISTRY[name].free:
            a = np.asarray(a, np.float64) * scale
        with np.errstate(over="ignore"):  # float16 overflows to ±inf: such draws are skipped
            args[i] = jnp.asarray(a, dtype)
    return args


def _run(name, args, where=None, reduction="mean"):
    return probe(name, args, where)[reduction]


def _value_and_grads(name: str, args, where=None):
    out = probe(name, args, where)
    return out["mean"], out["grads_mean"]


def _default_mean(case: Case) -> bool:
    default = next(f for f in dataclasses.fields(Case) if f.name == "reference_mean").default
    return case.reference_mean is default


def _is_float(x) -> bool:
    return np.issubdtype(np.asarray(x).dtype, np.floating)


seeds = st.integers(min_value=0, max_value=2**16)
# Row masks stand for smaller batches (a mask keeping one row is a batch of one: masked rows
# take no part), so every property runs on the one compiled shape of ``BATCH`` rows.
keeps = st.lists(st.booleans(), min_size=BATCH, max_size=BATCH)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(seed=seeds, scale=st.sampled_from(SCALES), dtype=st.sampled_from(sorted(DTYPES)))
def test_values_and_gradients_are_finite_at_extreme_scales(name, seed, scale, dtype):
    batch = BATCH
    scale = min(scale, REGISTRY[name].max_scale or scale)
    args = _inputs(name, batch, seed, scale, DTYPES[dtype])
    # Finite inputs only: scaled by 1e4, log-probabilities near -20 pass float16's maximum
    # (65504) and arrive as -inf, where inf - inf is NaN by definition (NaN propagates).
    assume(all(np.all(np.isfinite(np.asarray(a, np.float32))) for a in args if _is_float(a)))
    value, grads = _value_and_grads(name, args)
    assert value.dtype == jnp.float32
    assert np.isfinite(float(value)), (name, scale, dtype, float(value))
    if dtype == "float32" or scale <= 1:
        for g in grads:
            assert np.all(np.isfinite(np.asarray(g, np.float32))), (name, scale, dtype)


@pytest.mark.parametrize("name", [n for n in NAMES if not REGISTRY[n].signed])
@SETTINGS
@given(keep=keeps, seed=seeds, scale=st.sampled_from(SCALES))
def test_non_negative_losses_are(name, keep, seed, scale):
    scale = min(scale, REGISTRY[name].max_scale or scale)
    args = _inputs(name, BATCH, seed, scale)
    where = None if all(keep) else row_mask(name, args, np.array(keep))
    values = _run(name, args, where, reduction="none")
    # Rounding may leave a true 0 at -1 ulp of the terms it cancels.
    assert np.all(values >= -1e-5 * max(1.0, scale**2)), (name, values.min())


ROWS_INDEPENDENT = [n for n in NAMES if REGISTRY[n].rows_independent]


@pytest.mark.parametrize("name", ROWS_INDEPENDENT)
@SETTINGS
@given(seed=seeds, data=st.data())
def test_permuting_the_batch_leaves_the_mean(name, seed, data):
    batch = BATCH
    args = _inputs(name, batch, seed)
    order = np.asarray(data.draw(st.permutations(range(batch))))
    batched = batched_positions(name, args)
    permuted = [np.asarray(a)[order] if i in batched else a for i, a in enumerate(args)]
    np.testing.assert_allclose(_run(name, permuted), _run(name, args), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", ROWS_INDEPENDENT)
@SETTINGS
@given(keep=keeps, seed=seeds)
def test_where_equals_dropping_for_any_mask(name, keep, seed):
    # The masked mean equals the float64 reference's on the rows kept.
    keep = np.array(keep)
    args = _inputs(name, len(keep), seed)
    batched = batched_positions(name, args)
    masked = _run(name, args, where=row_mask(name, args, keep))
    if not keep.any():
        assert float(masked) == 0.0
        return
    dropped = [np.asarray(a)[keep] if i in batched else a for i, a in enumerate(args)]
    np.testing.assert_allclose(masked, reference_mean(name, dropped), rtol=2e-5, atol=1e-6)


PLAIN_MEAN = [n for n in NAMES if _default_mean(REGISTRY[n])]


@pytest.mark.parametrize("name", PLAIN_MEAN)
@SETTINGS
@given(keep=keeps, seed=seeds)
def test_sum_is_mean_times_count(name, keep, seed):
    keep = np.array(keep)
    args = _inputs(name, len(keep), seed)
    where = row_mask(name, args, keep)
    out = probe(name, args, where)
    mean, total = float(out["mean"]), float(out["sum"])
    if REGISTRY[name].class_labels is not None:  # out-of-range labels are not counted either
        count = int(np.sum(where & _valid_label_rows(name, args, where.shape)))
    else:
        count = int(np.sum(where))
    np.testing.assert_allclose(total, mean * count, rtol=2e-5, atol=1e-5)


def _valid_label_rows(name: str, args, shape) -> np.ndarray:
    labels_at, classes_at = REGISTRY[name].class_labels
    labels, classes = np.asarray(args[labels_at]), np.shape(args[classes_at])[0]
    valid = (labels >= 0) & (labels < classes)
    return np.broadcast_to(valid.reshape((-1,) + (1,) * (len(shape) - 1)), shape)


MARGIN_NAMES = [n for n in NAMES if REGISTRY[n].margin_head]
SCALE_FREE = [n for n in MARGIN_NAMES if "scale" in REGISTRY[n].kwargs]


@pytest.mark.parametrize("name", SCALE_FREE)
@SETTINGS
@given(
    seed=seeds,
    embedding_scale=st.floats(1e-3, 1e4),
    center_scale=st.floats(1e-3, 1e4),
)
def test_margin_losses_ignore_the_scale_of_embeddings_and_centers(
    name, seed, embedding_scale, center_scale
):
    x, centers, labels = _inputs(name, BATCH, seed)
    scaled = _run(name, [x * embedding_scale, centers * center_scale, labels])
    np.testing.assert_allclose(scaled, _run(name, [x, centers, labels]), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", MARGIN_NAMES)
@SETTINGS
@given(seed=seeds, sign=st.sampled_from([1.0, -1.0]), length=st.floats(1e-3, 1e3))
def test_margin_losses_are_finite_at_theta_0_and_pi(name, seed, sign, length):
    # Every embedding lies on (θ = 0) or opposite (θ = π) its class center.
    _, centers, labels = _inputs(name, BATCH, seed)
    labels = np.asarray(labels) % np.shape(centers)[0]
    x = sign * length * np.asarray(centers)[labels]
    value, grads = _value_and_grads(name, [jnp.asarray(x), centers, labels])
    assert np.isfinite(float(value))
    for g in grads:
        assert np.all(np.isfinite(g)), (name, sign)


@functools.cache
def _ctc_value_and_grad(zero_infinity: bool):
    def loss(logits, labels, logit_lengths, label_lengths):
        return jaxloss.ctc(
            logits,
            labels,
            logit_lengths=logit_lengths,
            label_lengths=label_lengths,
            zero_infinity=zero_infinity,
            reduction="none",
        )[0]

    return jax.jit(jax.value_and_grad(loss))


@SETTINGS
@given(
    seed=seeds,
    frames=st.integers(0, 6),
    label_length=st.integers(0, 3),
    zero_infinity=st.booleans(),
)
def test_ctc_with_zero_length_labels_or_inputs(seed, frames, label_length, zero_infinity):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.normal(size=(2, 6, 4)), jnp.float32)
    labels = jnp.asarray(rng.integers(1, 4, size=(2, 3)), jnp.int32)
    value, grad = _ctc_value_and_grad(zero_infinity)(
        logits, labels, jnp.array([frames, 6]), jnp.array([label_length, 3])
    )
    assert np.all(np.isfinite(grad))
    # An alignment needs a frame per label plus one between equal neighbours; with fewer
    # frames the loss is +inf (0 with zero_infinity), by definition. Otherwise finite.
    labels = np.asarray(labels[0, :label_length])
    needed = label_length + int(np.sum(labels[1:] == labels[:-1]))
    if frames >= needed:
        assert np.isfinite(float(value)) and float(value) >= 0
    elif zero_infinity:
        assert float(value) == 0.0
    else:
        assert float(value) == np.inf


# Padding values that are legitimate but infinite somewhere in the loss: masked, they must
# leave the value unchanged and send no NaN into any gradient.
def _hostile_padding_cases():
    mask = jnp.array([True, False, True])
    logits = jnp.zeros((3, 4)).at[1].set(-jnp.inf)  # a padding row of -inf logits
    labels = jnp.array([0, 0, 2])
    return {
        "softmax_focal": (
            lambda z: jaxloss.softmax_focal(z, labels, where=mask),
            logits.at[1, 1:].set(0.0),  # -inf at the stand-in label 0 only
        ),
        "softmax_focal[all -inf]": (lambda z: jaxloss.softmax_focal(z, labels, where=mask), logits),
        "sequence_logprobs": (
            lambda z: jnp.sum(jaxloss.sequence_logprobs(z[None], labels[None], where=mask[None])),
            logits,
        ),
        "gaussian_kl": (
            lambda v: jaxloss.gaussian_kl(jnp.zeros((3, 4)), v, where=mask),
            jnp.zeros((3, 4)).at[1].set(200.0),  # exp(200) = inf
        ),
        "elbo_loss": (
            lambda v: jaxloss.elbo_loss(jnp.zeros(3), jnp.zeros((3, 4)), v, where=mask),
            jnp.zeros((3, 4)).at[1].set(200.0),
        ),
        "kl_div[log_target]": (
            lambda t: jaxloss.kl_div(jnp.zeros((3, 4)), t, log_target=True, where=mask[:, None]),
            jnp.zeros((3, 4)).at[1].set(-jnp.inf),
        ),
    }


@pytest.mark.parametrize("case", sorted(_hostile_padding_cases()))
def test_infinite_padding_sends_no_nan_into_gradients(case):
    loss, x = _hostile_padding_cases()[case]
    value_and_grad = jax.jit(jax.value_and_grad(loss))
    value, grad = value_and_grad(x)
    clean_value, _ = value_and_grad(x.at[1].set(0.0))
    np.testing.assert_allclose(value, clean_value, rtol=1e-6)
    assert np.all(np.isfinite(grad)), grad
    assert np.all(np.asarray(grad)[1] == 0)
