"""The unmasked fast path: without ``where``, a loss whose targets cannot be ignored compiles
to a program with no mask and no count work.

For every elementwise and row-wise loss with float targets (regression, binary
cross-entropy, focal, KL and the other divergences, the pair losses of preference
optimization), the optimized HLO of ``jit(value_and_grad)`` of the mean is read twice: with
``where=None`` and with a traced mask. The masked program turns the mask into a count (a
``convert`` of the boolean mask to a float, and one more ``reduce``) and selects around the
masked entries; the unmasked one must hold no ``convert`` at all, one ``reduce`` fewer and
fewer ``select``s — its mean divides by the static size. The labels of a classification
loss can always fall outside the classes (they are excluded then, as ``ignore_index``), so
those losses count their rows in every case and are not listed.
"""

from __future__ import annotations

import collections
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def _op_counts(name: str, masked: bool) -> collections.Counter:
    """Instruction counts of the optimized HLO of value_and_grad of the loss's mean."""
    case = registry.REGISTRY[name]
    args = case.make_inputs(np.random.default_rng(0), 8)
    where = jnp.ones(registry.where_shape(name, args), bool)

    def loss(differentiated, where):
        full = compiled.with_differentiable(name, args, differentiated)
        return registry.call(name, *full, where=where if masked else None, reduction="mean")

    differentiated = [jnp.asarray(args[i]) for i in case.differentiable]
    program = jax.jit(jax.value_and_grad(loss)).lower(differentiated, where).compile()
    return collections.Counter(_OP.findall(program.as_text()))


@pytest.mark.parametrize("name", FLOAT_TARGET_LOSSES)
def test_no_mask_and_no_count_without_where(name):
    unmasked, masked = _op_counts(name, False), _op_counts(name, True)
    # The masked program is the yardstick: if it did not count, the check would be void.
    assert masked["convert"] > 0 and masked["reduce"] > 1, (name, masked)
    assert unmasked["convert"] == 0, f"{name}: count work without `where` ({unmasked})"
    assert unmasked["reduce"] < masked["reduce"], (name, unmasked, masked)
    assert unmasked["select"] < masked["select"], (name, unmasked, masked)
