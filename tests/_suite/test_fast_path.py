"""The unmasked fast path: without ``where``, a loss whose targets cannot be ignored compiles
to a program with no mask and no count work.

For every elementwise and row-wise loss with float targets (regression, binary
cross-entropy, focal, KL and the other divergences, the pair losses of preference
optimization), the optimized HLO of ``jit(value_and_grad)`` of the mean is read twice: with
``where=None`` and with a traced mask. The masked program turns the mask into a count (a
``convert`` of the boolean mask to a float, and one more ``reduce``) and selects around the
masked entries; the unmasked one must hold no ``convert`` to a float at all, one ``reduce``
fewer and fewer ``select``s — its mean divides by the static size. The labels of a classification
loss can always fall outside the classes (they are excluded then, as ``ignore_index``), so
those losses count their rows in every case and are not listed.

The losses of ``ONE_PASS`` (their value and partials written with ``_numerics.elementwise``,
or by a row kernel that recomputes them: ``distill_kl``, ``skew_kl``, ``tvd``) must moreover compile
``jit(value_and_grad)`` to a program that writes no intermediate array: XLA's temporary
memory stays below one input's size. Those of ``WRITTEN`` write exactly one, their values
before the sum (``_numerics.written_out``), and share nothing with the gradient either.
"""

from __future__ import annotations

import collections
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from tests._suite import compiled, registry

FLOAT_TARGET_LOSSES = (
    "mse",
    "mae",
    "huber",
    "smooth_l1",
    "log_cosh",
    "charbonnier",
    "poisson_nll",
    "gaussian_nll",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "sigmoid_focal",
    "hinge",
    "perceptron",
    "soft_margin",
    "multilabel_soft_margin",
    "hinge_embedding",
    "kl_div",
    "generalized_kl",
    "gaussian_kl",
    "distill_kl",
    "generalized_jsd",
    "bradley_terry",
    "dpo",
    "dpo[ipo]",
    "simpo",
    "orpo",
    "kl_penalty[k3]",
)

_OP = re.compile(r"= [a-z0-9\[\],{}]+ ([a-z\-]+)\(")
# A count is a boolean mask converted to a float; a NaN check's ``lax.cond`` converts its
# predicate to an integer branch index, which counts nothing.
_FLOAT_CONVERT = re.compile(r"= (?:f16|bf16|f32|f64)\[[0-9,]*\][{}0-9,]* convert\(")


def _op_counts(name: str, masked: bool) -> collections.Counter:
    """Instruction counts of the optimized HLO of value_and_grad of the loss's mean."""
    case = registry.REGISTRY[name]
    args = case.make_inputs(np.random.default_rng(0), 8)
    where = jnp.ones(registry.where_shape(name, args), bool)

    def loss(differentiated, where):
        full = compiled.with_differentiable(name, args, differentiated)
        return registry.call(name, *full, where=where if masked else None, reduction="mean")

    differentiated = [jnp.asarray(args[i]) for i in case.differentiable]
    lowered = jax.jit(jax.value_and_grad(loss)).lower(differentiated, where)
    text = compiled.compile_as_users(lowered).as_text()
    counts = collections.Counter(_OP.findall(text))
    counts["float convert"] = len(_FLOAT_CONVERT.findall(text))
    return counts


@pytest.mark.parametrize("name", FLOAT_TARGET_LOSSES)
def test_no_mask_and_no_count_without_where(name):
    unmasked, masked = _op_counts(name, False), _op_counts(name, True)
    # The masked program is the yardstick: if it did not count, the check would be void.
    assert masked["float convert"] > 0 and masked["reduce"] > 1, (name, masked)
    assert unmasked["float convert"] == 0, f"{name}: count work without `where` ({unmasked})"
    assert unmasked["reduce"] < masked["reduce"], (name, unmasked, masked)
    assert unmasked["select"] < masked["select"], (name, unmasked, masked)


def _one_pass_inputs(name: str) -> tuple[jax.Array, ...]:
    """2^14 float32 inputs of the right kinds for the losses of ``ONE_PASS``."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=1 << 14), jnp.float32)
    hard = (x > 0).astype(jnp.float32)
    rows = x.reshape(16, -1)
    return {
        "binary_cross_entropy": (jax.nn.sigmoid(x), hard),
        "kl_div": (jax.nn.log_softmax(rows), jax.nn.softmax(-rows)),
        "generalized_kl": (jax.nn.log_softmax(rows), jnp.abs(rows)),
        "distill_kl": (rows, 2 * rows[::-1]),
        "skew_kl": (rows, 2 * rows[::-1]),
        "tvd": (rows, 2 * rows[::-1]),
        "gaussian_nll": (x, hard, jnp.exp(x)),
    }.get(name, (x, hard))


# The losses written with ``_numerics.elementwise``: XLA sums the value and writes the
# gradient each in one pass over the inputs, with no intermediate array between them.
# The regression and binary losses of FLOAT_TARGET_LOSSES (those before soft_margin) and
# the two KL divergences; and the divergences between two softmaxes (``_kernels.row_kl``).
ONE_PASS = (
    *FLOAT_TARGET_LOSSES[: FLOAT_TARGET_LOSSES.index("soft_margin")],
    "kl_div",
    "generalized_kl",
    "distill_kl",
    "skew_kl",
    "tvd",
)


# The ``ONE_PASS`` losses whose values are written out before their sum
# (``_numerics.elementwise(..., written=True)``).
WRITTEN = ("huber", "smooth_l1", "charbonnier", "kl_div")


@pytest.mark.parametrize("name", ONE_PASS)
def test_value_and_gradient_write_no_intermediate_array(name):
    # XLA's compiled memory analysis is exact: any intermediate of the inputs' size written
    # for the gradient (a shared difference, exponential or constant) shows up as temp memory.
    args = _one_pass_inputs(name)
    loss = getattr(jaxloss, name)
    program = compiled.compile_as_users(jax.jit(jax.value_and_grad(loss)).lower(*args))
    temp = program.memory_analysis().temp_size_in_bytes
    arrays = 2 if name in WRITTEN else 1
    assert temp < arrays * args[0].nbytes, f"{name}: {temp} bytes of intermediates"
    # ``written_out``'s marker on the values (JAX's own rules put some on per-row scalars).
    shape = ",".join(map(str, args[0].shape))
    marker = re.compile(rf"= f32\[{shape}\]\S* reduce-precision\(")
    written = bool(marker.search(program.as_text()))
    assert written == (name in WRITTEN), f"{name}: values written out: {written}"
