"""The README's promises, checked for every registered loss (``tests/<family>/cases.py``).

* **Hostile padding:** NaN, ±inf or 1e30 in entries that do not count (rows masked by
  ``where``, ignored labels, entries past a length) leave the value as it is with clean
  padding, give exactly zero gradients there, and the other gradients unchanged; also with
  a ``where`` of single entries (a (sample, class) pair, a token, a coordinate) for every
  loss whose ``where`` has more than the batch axis.
* **NaN propagates:** NaN in an entry that counts gives NaN in the value; and whenever a NaN
  reaches a gradient, it reaches the value too (an ``isfinite(loss)`` guard then fires).
* **Empty batches:** a batch of 0 rows gives 0 (an empty ``"none"``, or zeros for a loss
  whose ``"none"`` is per class) and zero gradients.
* **Integer inputs of every width:** uint8, int8, uint16, int16, int32 and int64 labels,
  lengths and signs give the int32 value.
* **Checked mode** rejects +inf (and NaN) in every floating input.

Each loss is compiled once per shape: the properties run on one compiled function with
different values (``tests/_suite/compiled.py``; the conftest keeps a loss's tests on one
worker). The integer widths run eagerly, on the operations that test_common's eager call
has compiled.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxloss
from tests._suite import compiled
from tests._suite.compiled import BATCH, KEEP, probe
from tests._suite.registry import (
    DEVICE_AND_CHECK_NAMES,
    REGISTRY,
    batched_positions,
    call,
    row_mask,
    where_shape,
)

POISONS = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf, "1e30": 1e30}
NAMES = sorted(REGISTRY)


def _is_float(x) -> bool:
    return np.issubdtype(np.asarray(x).dtype, np.floating)


def _inputs(name: str, batch: int = BATCH, seed: int = 0) -> list:
    return [np.asarray(a) for a in REGISTRY[name].make_inputs(np.random.default_rng(seed), batch)]


def _padding(name: str, args: list) -> tuple[np.ndarray | None, dict[int, np.ndarray]]:
    """``where`` masking rows ``~KEEP``, and the entries of each input that then do not count.

    Entries the loss must not read besides masked rows (ignored labels, past a length) come
    from the entry's ``padding``.
    """
    where, padded = row_mask(name, args, KEEP), {}
    for position in batched_positions(name, args):
        if _is_float(args[position]):
            rows = (~KEEP).reshape((-1,) + (1,) * (args[position].ndim - 1))
            padded[position] = np.broadcast_to(rows, args[position].shape)
    extra = REGISTRY[name].padding
    if extra is not None:
        for position, entries in extra(*args).items():
            padded[position] = padded.get(position, False) | entries
    return where, padded


@pytest.mark.parametrize("poison", sorted(POISONS))
@pytest.mark.parametrize("name", NAMES)
def test_hostile_padding_gives_the_clean_value_and_zero_gradients(name, poison):
    case = REGISTRY[name]
    args = _inputs(name)
    where, padded = _padding(name, args)
    clean = probe(name, args, where)
    clean_value, clean_grads = clean["mean"], clean["grads_mean"]
    hostile = list(args)
    for position, entries in padded.items():
        hostile[position] = np.where(
            entries, np.asarray(POISONS[poison], args[position].dtype), args[position]
        )
    out = probe(name, hostile, where)
    value, grads = out["mean"], out["grads_mean"]
    np.testing.assert_allclose(value, clean_value, rtol=1e-6, atol=1e-7, err_msg="value")
    for position, grad, clean in zip(case.differentiable, grads, clean_grads, strict=True):
        grad, clean = np.asarray(grad), np.asarray(clean)
        if position in padded:
            assert np.all(grad[padded[position]] == 0), (position, grad)
            clean = np.where(padded[position], 0, clean)
        np.testing.assert_allclose(grad, clean, rtol=1e-5, atol=1e-7, err_msg=f"grad {position}")


def _entry_mask(name: str, args: list) -> np.ndarray:
    """A ``where`` of single entries (a token, a (sample, class) pair, a coordinate): each
    entry of the kept rows (``KEEP``) kept with probability 0.6, the first one always."""
    shape = where_shape(name, args)
    keep = KEEP.reshape((-1,) + (1,) * (len(shape) - 1)) & (
        np.random.default_rng(1).uniform(size=shape) < 0.6
    )
    keep.reshape(-1)[0] = True
    return keep


def _entry_padding(name: str, args: list, keep: np.ndarray) -> dict[int, np.ndarray]:
    """The input entries that only the entries ``keep`` masks read: the same entry of an
    input of ``where``'s shape, the last axis (vocabulary, features) of a masked token, and
    a masked class's pixels in a dense loss whose predictions are read class by class (a
    softmax reads every class: none there). Integer labels are shared by the classes."""
    masked, padded = ~keep, {}
    dense = REGISTRY[name].fn.__module__.startswith("jaxloss.dense")
    for position, a in enumerate(args):
        if not _is_float(a) or a.ndim < masked.ndim:
            continue
        if a.shape == masked.shape:
            padded[position] = masked
        elif a.shape[:-1] == masked.shape:
            padded[position] = np.broadcast_to(masked[..., None], a.shape)
        elif dense and REGISTRY[name].kwargs.get("from_logits") != "softmax":
            # [batch, *pixels, classes] against [batch, classes], or [batch, classes - 1]
            # without the background (class 0, not read).
            classes = np.zeros((a.shape[0], a.shape[-1]), bool)
            classes[:, a.shape[-1] - masked.shape[-1] :] = masked
            padded[position] = np.broadcast_to(
                classes.reshape((a.shape[0],) + (1,) * (a.ndim - 2) + (a.shape[-1],)), a.shape
            )
    return padded


WITH_ENTRIES = [n for n in NAMES if len(where_shape(n, _inputs(n))) > 1]
"""The entries whose ``where`` has more axes than the batch (tokens, pixels, coordinates)."""
ENTRY_MASKED = [
    n for n in WITH_ENTRIES if _entry_padding(n, _inputs(n), _entry_mask(n, _inputs(n)))
]


@pytest.mark.parametrize("name", ENTRY_MASKED)
def test_hostile_values_in_entries_masked_one_by_one(name):
    # The promise above with a ``where`` of single entries, not whole rows: a dense loss
    # whose ``where`` masks (sample, class) pairs, a token loss masking tokens inside a
    # sequence, an elementwise loss masking coordinates. Same compiled function as the row
    # masks (the same ``where`` shape), so no compilation of its own.
    case = REGISTRY[name]
    args = _inputs(name)
    keep = _entry_mask(name, args)
    padded = _entry_padding(name, args, keep)
    clean = probe(name, args, keep)
    for position, grad in zip(case.differentiable, clean["grads_mean"], strict=True):
        if position in padded:
            assert np.all(np.asarray(grad)[padded[position]] == 0), position
    for poison, value in POISONS.items():
        hostile = list(args)
        for position, entries in padded.items():
            hostile[position] = np.where(
                entries, np.asarray(value, args[position].dtype), args[position]
            )
        out = probe(name, hostile, keep)
        np.testing.assert_allclose(out["mean"], clean["mean"], rtol=1e-6, atol=1e-7, err_msg=poison)
        for position, grad, expected in zip(
            case.differentiable, out["grads_mean"], clean["grads_mean"], strict=True
        ):
            np.testing.assert_allclose(
                grad, expected, rtol=1e-5, atol=1e-7, err_msg=f"{poison}: grad {position}"
            )


ROW_MASK_VALUES = ("binary_cross_entropy_with_logits", "dice", "distill_kl", "grpo", "mse")


@pytest.mark.parametrize("name", WITH_ENTRIES)
def test_a_where_of_the_batch_axis_alone_masks_whole_rows(name):
    # A [batch] mask against [batch, time] or [batch, ..., classes] is one per row, spread
    # over the rest (NumPy would align it with the last axis: refused, or silently per
    # position where the sizes agree). Every loss takes it (traced only: the masking door,
    # `_checks.mask`, turns it into the full mask); the values for one loss of each kind.
    args = _inputs(name)
    shape = where_shape(name, args)
    none = jax.eval_shape(lambda *a: call(name, *a, where=KEEP, reduction="none"), *args)
    assert none.shape == shape
    if name not in ROW_MASK_VALUES:
        return
    value = jax.jit(lambda *a: call(name, *a, where=KEEP))(*args)
    expected = probe(name, args, row_mask(name, args, KEEP))["mean"]
    np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7)


def test_a_where_that_reads_as_rows_and_as_positions_is_refused():
    square = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match=r"give \(4, 1\) for one value per leading entry"):
        jax.eval_shape(lambda: jaxloss.mse(square, square, where=np.ones(4, bool)))
    # a mask of positions that cannot be rows broadcasts as NumPy does
    wide = np.zeros((3, 4), np.float32)
    where = np.array([True, False, True, True])
    value = jax.jit(lambda: jaxloss.mse(wide + 1, wide, where=where))()
    np.testing.assert_allclose(value, 1.0)


@pytest.mark.parametrize("name", NAMES)
def test_nan_in_a_counted_entry_gives_nan(name):
    args = _inputs(name)
    where, _ = _padding(name, args)
    batched = batched_positions(name, args)
    for position, a in enumerate(args):
        if not _is_float(a):
            continue
        poisoned = list(args)
        poisoned[position] = a.copy()
        # Row 0 counts (KEEP[0]); a loss may read some entries of a row only (the label's).
        poisoned[position][0] = np.nan
        out = probe(name, poisoned, where)
        value, grads = out["mean"], out["grads_mean"]
        reaches_gradient = any(not np.all(np.isfinite(g)) for g in grads)
        if position in batched or reaches_gradient:
            assert np.isnan(float(value)), f"NaN in input {position} gives {float(value)}" + (
                " while a gradient holds NaN" if reaches_gradient else ""
            )


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch_is_zero_with_zero_gradients(name):
    out = probe(name, _inputs(name, batch=0), float32_only=True)
    assert out["none"].dtype == jnp.float32
    # Per class, "none" keeps its classes: each with no row, so 0.
    assert np.all(out["none"] == 0) if REGISTRY[name].per_class_none else out["none"].size == 0
    for reduction in ("mean", "sum"):
        value = out[reduction]
        assert value.shape == () and float(value) == 0.0, (reduction, value)
        for g in out[f"grads_{reduction}"]:
            assert np.all(g == 0), reduction


WIDTHS = (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.int64)
WITH_INTEGERS = [n for n in NAMES if any(np.issubdtype(a.dtype, np.integer) for a in _inputs(n))]


@pytest.mark.parametrize("name", WITH_INTEGERS)
def test_integer_inputs_of_every_width_give_the_int32_value(name):
    args = _inputs(name)
    variants = [[a.astype(np.int32) if a.dtype.kind in "iu" else a for a in args]]
    for width in WIDTHS:
        info = np.iinfo(width)
        if all(info.min <= a.min() and a.max() <= info.max for a in args if a.dtype.kind in "iu"):
            variants.append([a.astype(width) if a.dtype.kind in "iu" else a for a in args])
    assert len(variants) >= 3  # int32, int64 and some narrower width at least
    # Eagerly: past the conversion of the integer inputs the variants share every
    # operation, most of them compiled already by test_jit_equals_eager (same loss, same
    # shapes, same worker), while one jitted function of the variants would compile the
    # loss 7 times.
    expected, *values = (np.asarray(call(name, *variant, reduction="none")) for variant in variants)
    for variant, value in zip(variants[1:], values, strict=True):
        dtypes = {str(a.dtype) for a in variant if a.dtype.kind in "iu"}
        np.testing.assert_array_equal(value, expected, err_msg=str(dtypes))


@pytest.mark.parametrize("name", DEVICE_AND_CHECK_NAMES)
@pytest.mark.parametrize("poison", ["nan", "+inf"])
def test_checked_mode_rejects_nan_and_plus_inf(name, poison):
    args = _inputs(name)
    for position, a in enumerate(args):
        if not _is_float(a):
            continue
        poisoned = list(args)
        poisoned[position] = a.copy()
        poisoned[position].reshape(-1)[0] = POISONS[poison]
        with pytest.raises(checkify.JaxRuntimeError):
            compiled.checked(name)(*poisoned)


@pytest.mark.parametrize(
    "loss",
    [
        "cross_entropy",
        "nll",
        "softmax_focal",
        "linear_cross_entropy",
        "arcface",
        "center_loss",
        "dice",
        "token_logprobs",
    ],
)
def test_labels_reaching_the_top_of_their_dtype(loss):
    # uint8 labels of a 256-class problem (byte-level LMs, uint8 masks), int8 of 128, ...:
    # the number of classes does not fit the labels' dtype, and must not wrap. Every width
    # and its int32 reference are computed by one compiled function, the inputs being its
    # arguments (closed over, they would be constants that XLA folds: seconds at 65,536
    # classes).
    widths = WIDTHS[:4]
    for width, (expected, got, ignored) in zip(
        widths, _at_the_top(loss, [_batch_at_the_top(width) for width in widths]), strict=True
    ):
        name = np.dtype(width).name
        assert np.all(np.isfinite(expected)) and np.any(expected != 0), name
        np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=name)
        if loss == "cross_entropy" and np.iinfo(width).min == 0:
            np.testing.assert_allclose(ignored, expected, rtol=1e-6, err_msg=name)


def _batch_at_the_top(width) -> dict:
    """Labels of ``width`` (and as int32) reaching its top class, and the float inputs."""
    num_classes = int(np.iinfo(width).max) + 1
    rng = np.random.default_rng(0)
    labels = np.array([0, 10, num_classes - 1, num_classes // 2, 1, num_classes - 2])
    x = rng.normal(size=(6, 4)).astype(np.float32)
    w = rng.normal(size=(num_classes, 4)).astype(np.float32)
    return {
        "x": x,
        "w": w,
        "logits": x @ w.T,
        "wide": labels.astype(np.int32),
        "narrow": labels.astype(width),
    }


@functools.partial(jax.jit, static_argnames="loss")
def _at_the_top(loss, batches):
    return [_wide_and_narrow(loss, **batch) for batch in batches]


def _label_calls(x, w, logits):
    """Each loss of the tests above as a function of its integer labels."""
    return {
        "cross_entropy": lambda y: jaxloss.cross_entropy(logits, y, reduction="none"),
        "nll": lambda y: jaxloss.nll(jax.nn.log_softmax(logits), y, reduction="none"),
        "softmax_focal": lambda y: jaxloss.softmax_focal(logits, y, reduction="none"),
        "linear_cross_entropy": lambda y: jaxloss.linear_cross_entropy(x, w, y, reduction="none"),
        "arcface": lambda y: jaxloss.arcface(x, w, y, reduction="none", chunk_size=64),
        "center_loss": lambda y: jaxloss.center_loss(x, w, y, reduction="none"),
        "dice": lambda y: jaxloss.dice(jax.nn.softmax(logits)[None], y[None], reduction="none"),
        "token_logprobs": lambda y: jaxloss.token_logprobs(logits, y),
    }


def _wide_and_narrow(loss, x, w, logits, wide, narrow):
    calls = _label_calls(x, w, logits)
    # torch's ignore_index -100 is not a label of an unsigned dtype: nothing is ignored.
    ignored = (
        jaxloss.cross_entropy(logits, narrow, ignore_index=-100, reduction="none")
        if loss == "cross_entropy"
        else jnp.zeros(())
    )
    return calls[loss](wide), calls[loss](narrow), ignored


@pytest.mark.parametrize("loss", ["cross_entropy", "center_loss", "dice"])
def test_int64_labels_past_int32_are_excluded_not_wrapped(loss):
    # With x64 off, JAX converts NumPy's int64 to int32 modulo 2^32 (2^32 + 1 would be class
    # 1); the labels jaxloss converts itself (an eager call) saturate and are left out, as
    # every label outside [0, num_classes). (Under jit JAX converts the arguments before
    # jaxloss sees them: the README says so.)
    batch = _batch_at_the_top(np.int8)
    far = batch["wide"].astype(np.int64)
    far[[1, 2, 4]] = [2**32 + 1, -(2**63), 2**40 + 10]
    excluded = batch["wide"].copy()
    excluded[[1, 2, 4]] = -1
    calls = _label_calls(batch["x"], batch["w"], batch["logits"])
    got, expected = (np.asarray(calls[loss](y)) for y in (far, excluded))
    np.testing.assert_array_equal(got, expected)
    assert np.any(got != np.asarray(calls[loss](batch["wide"])))
