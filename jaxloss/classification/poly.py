"""PolyLoss: cross-entropy plus a polynomial in ``1 − p_t`` (Leng et al. 2022).

``logits`` have the class axis ``axis`` (last by default); ``labels`` are integer class ids
of their shape without it, or float class probabilities of their shape, as in
:func:`jaxloss.cross_entropy`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _labels, _numerics
from jaxloss._kernels.soft_cross_entropy import soft_cross_entropy
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName
from jaxloss.classification.softmax import _classes_last, _integer_targets, probability_targets


def _polynomial(epsilon: ArrayLike, x: jax.Array) -> jax.Array:
    """``Σ_j ε_j x^j`` for ``j = 1 … N``: ``epsilon`` a number (N = 1) or ``[N]`` (Horner)."""
    coefficients = jnp.asarray(epsilon)
    if coefficients.ndim > 1:
        raise ValueError(
            f"`epsilon` must be a number or a vector [order], got shape {coefficients.shape}."
        )
    coefficients = _checks.float_array(coefficients, "epsilon", allow_int=True).astype(x.dtype)
    coefficients = coefficients.reshape(-1)
    total = jnp.zeros_like(x)
    for j in reversed(range(coefficients.shape[0])):
        total = x * (coefficients[j] + total)
    return total


def poly_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    epsilon: ArrayLike = 2.0,
    ignore_index: int | None = None,
    axis: int = -1,
    axis_name: AxisName = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""PolyLoss: cross-entropy plus a polynomial in :math:`1 - p_t`, as optax's
    ``poly_loss_cross_entropy``.

    .. math::
      \ell_i = -\log p_{t,i} + \sum_{j=1}^{N} \varepsilon_j\, (1 - p_{t,i})^j

    Poly-1 (a number ``epsilon``, the paper's main form) adds :math:`\varepsilon (1 - p_t)`;
    a vector ``epsilon`` :math:`= [\varepsilon_1, \dots, \varepsilon_N]` is Poly-N, the
    polynomial's order being its length. With an integer label :math:`y`,
    :math:`p_t = p_y` (softmax of ``logits``); with probability targets :math:`t`,
    :math:`-\log p_t` is the cross-entropy :math:`-\sum_c t_c \log p_c` and
    :math:`1 - p_t = \sum_c t_c (1 - p_c)`, optax's form (equal to
    :math:`1 - \sum_c t_c p_c` for targets that sum to 1). For label smoothing, give
    ``smooth_labels(jax.nn.one_hot(labels, num_classes), alpha)`` as the targets, as the
    paper's code does. The mean divides by the number of counted entries.

    Numerics: with an integer label, :math:`1 - p_y = -\operatorname{expm1}(\log p_y)`
    keeps its precision as :math:`p_y \to 1`; a class left out of the softmax by a logit of
    −inf adds 0 where its target is 0, as in :func:`jaxloss.cross_entropy`. Labels outside
    ``[0, num_classes)`` are excluded.

    Args:
      logits: unnormalized scores ``[..., num_classes]`` (class axis at ``axis``).
      labels: integer class ids of the logits' shape without the class axis; or float class
        probabilities of the logits' shape.
      epsilon: :math:`\varepsilon_1`, or ``[order]`` coefficients :math:`\varepsilon_j`
        (Poly-N); may be traced. The paper recommends 2 on ImageNet and −1 for detection.
        Not checked, as optax: below −1 (Poly-1) the loss rises again as
        :math:`p_t \to 1` (its slope there is :math:`-1 - \varepsilon`).
      ignore_index: integer labels equal to it are excluded (not with probabilities).
      axis: the class axis of ``logits`` (and of probability ``labels``).
      axis_name: mapped axis of the batch (global mean and sum).
      where: optional boolean mask, broadcastable to ``"none"``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.log(jnp.array([[0.5, 0.25, 0.25]]))
      >>> round(float(jaxloss.poly_cross_entropy(logits, jnp.array([0]), epsilon=1.0)), 4)
      1.1931

    References:
      Leng, Tan, Liu, Cubuk, Shi, Cheng and Anguelov, "PolyLoss: A Polynomial Expansion
      Perspective of Classification Loss Functions", 2022. https://arxiv.org/abs/2204.12511
    """
    logits = _classes_last(logits, axis, "logits")
    labels = _labels.as_array(labels)
    if jnp.issubdtype(labels.dtype, jnp.floating):
        if ignore_index is not None:
            raise ValueError(
                "`ignore_index` applies to integer labels only; with probability targets mask "
                "entries with `where`."
            )
        targets = _classes_last(labels, axis, "labels")
        probability_targets(logits, targets)
        _checked.probabilities(targets, "labels")
        mask, (logits, targets) = masked_inputs(where, logits.shape[:-1], logits, targets)
        cross_entropy = soft_cross_entropy(logits, targets)
        # Σ t (1 − p) as Σ t − Σ t p: one pass fewer than 1 − p per class, and its rounding
        # (absolute, about an ulp of the log-normalizer's) is the cross-entropy's own.
        probs = jax.nn.softmax(logits, axis=-1)
        one_minus_pt = jnp.sum(targets, axis=-1) - jnp.sum(targets * probs, axis=-1)
    else:
        safe_labels, mask, logits = _integer_targets(labels, logits, "logits", ignore_index, where)
        log_pt = _numerics.log_softmax_at(logits, safe_labels)
        cross_entropy = -log_pt
        one_minus_pt = -jnp.expm1(log_pt)
    loss = cross_entropy + _polynomial(epsilon, one_minus_pt)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)
