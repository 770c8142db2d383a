"""``Case``: how the shared suites exercise one public loss (or one variant of it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Case:
    """How the common suite exercises one loss.

    Attributes:
      fn: the public function.
      make_inputs: ``(rng, batch) -> tuple`` of positional NumPy inputs.
      reference: float64 per-example (``reduction="none"``) values from those inputs.
      kwargs: options passed to both ``fn`` and ``reference``.
      differentiable: positions of the inputs to differentiate.
      hyperparameters: a traced hyperparameter and a second value for it, for the
        no-retrace test (empty if the loss has none).
      reference_mean: ``(none_values, *inputs, **kwargs) -> expected "mean"``; default the
        plain mean (CTC divides each loss by its label length first, as torch).
      grad_modes: the autodiff modes ``check_grads`` verifies; a hand-written
        ``custom_vjp`` kernel supports reverse mode only.
      batched: positions of the inputs whose leading axis is the batch (split when entries
        are dropped); None: all of them. Class centers, for one, are not.
      rows_independent: each row's value depends on that row's inputs alone. False for
        ``gradient_penalty``, which draws its interpolation coefficients per batch
        position, so dropping rows redraws them (its masking is tested in its own module).
      free: positions of the inputs that may take any real value (logits, embeddings,
        predictions, scores, log-probabilities): the property suite scales them from 0 to
        1e4; the others (probabilities, labels, lengths, log-variances) keep their values.
      max_scale: the largest scale of the free inputs at which the loss is finite by
        definition (an ``exp`` of a log-ratio is +inf past about 88), or None.
      signed: negative values are part of the loss's definition.
      margin_head: a margin-softmax head ``(embeddings, centers, labels)``: invariant to
        the scale of embeddings and centers, finite at θ = 0 and π, a choice of
        ``jaxloss.nn.MarginSoftmaxHead``.
      class_labels: ``(labels position, class rows position)`` when labels may fall
        outside the classes (excluded, so not counted in a mean), else None.
      token_loss: per-token inputs ``[batch, tokens]`` with a per-token ``where`` (policy
        losses): the 8-device suite checks that its mean is over the valid tokens of every
        device.
      invalid: hyperparameter values outside the option's domain, each of which must raise
        a ValueError naming the option when given as a Python number (``{"delta": 0.0}``).
      padding: ``(*inputs) -> {position: mask}``, the entries of those inputs that the
        loss must not read besides rows masked by ``where`` (ignored labels, entries past a
        length): the hostile-padding property fills them with NaN, ±inf and 1e30.
      per_class_none: ``"none"`` holds one value per class (a row of the class input, as
        ``proxy_anchor``'s per-proxy terms), not per batch row: ``where`` is then a
        ``[batch]`` mask of rows (not of the ``"none"`` shape), ``reference`` returns the
        per-class values, masked rows leave no zero in ``"none"`` to check (their
        gradients still are), an empty batch gives zeros (not an empty ``"none"``), and
        with ``axis_name`` every device returns the global per-class values.
    """

    fn: Callable[..., Any]
    make_inputs: Callable[[np.random.Generator, int], tuple]
    reference: Callable[..., np.ndarray]
    kwargs: dict = dataclasses.field(default_factory=dict)
    differentiable: tuple[int, ...] = (0,)
    hyperparameters: dict = dataclasses.field(default_factory=dict)
    reference_mean: Callable[..., float] = lambda none, *inputs, **kwargs: none.mean()
    grad_modes: tuple[str, ...] = ("fwd", "rev")
    batched: tuple[int, ...] | None = None
    rows_independent: bool = True
    free: tuple[int, ...] = ()
    max_scale: float | None = None
    signed: bool = False
    margin_head: bool = False
    class_labels: tuple[int, int] | None = None
    token_loss: bool = False
    invalid: dict = dataclasses.field(default_factory=dict)
    padding: Callable[..., dict[int, np.ndarray]] | None = None
    per_class_none: bool = False


def public_name(name: str) -> str:
    """The exported function a registry entry tests: ``"arcface[classes]"`` -> ``"arcface"``."""
    return name.split("[")[0]
