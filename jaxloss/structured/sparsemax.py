"""Sparsemax (Martins & Astudillo 2016) and its losses, binary and multiclass.

Sparsemax is the Euclidean projection onto the probability simplex,
``p = max(x − τ, 0)`` with the threshold ``τ`` such that ``Σ p = 1``. The threshold is
found without a sort, by Newton's method on the convex, piecewise linear
``f(τ) = Σ max(x − τ, 0) − 1`` started below the root at ``τ = max(x) − 1`` (a variant of
Michelot's algorithm): each step ``τ ← (Σ_{x > τ} x − 1) / #{x > τ}`` raises ``τ`` without
passing the root and shrinks the support, and once the support stops shrinking ``τ`` is
exact. A step is one pass over the classes (a compare, a sum and a count); a few suffice
(under 10 on Gaussian scores of any scale, one or two for ties and one-hot rows), and never
more than ``num_classes``. The classic algorithm sorts each row (``O(C log C)``, optax's
``projection_simplex``): on CPU at 4096 × 1000 the loss's forward and backward pass is
about 8× faster this way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _labels, _numerics
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName
from jaxloss.classification.softmax import _classes_last, _integer_targets


def _threshold(z: jax.Array) -> jax.Array:
    """``τ [..., 1]`` with ``Σ max(z − τ, 0) = 1`` over the last axis, where ``max z = 0``.

    Michelot's algorithm from ``τ = −1`` (see the module docstring). A row whose support
    stops shrinking keeps its ``τ``; the loop ends when no row's support shrinks (a row of
    NaN has an empty support and stops at once, its ``τ`` then −inf).
    """

    def step(tau: jax.Array) -> tuple[jax.Array, jax.Array]:
        support = z > tau
        size = jnp.sum(support, axis=-1, keepdims=True)
        total = jnp.sum(jnp.where(support, z, 0), axis=-1, keepdims=True)
        return (total - 1) / size, size

    def shrinking(state: tuple) -> jax.Array:
        return jnp.any(state[2])

    def shrink(state: tuple) -> tuple:
        tau, size, _ = state
        new_tau, new_size = step(tau)
        shrunk = new_size < size
        return jnp.where(shrunk, new_tau, tau), jnp.where(shrunk, new_size, size), shrunk

    tau, size = step(jnp.full((*z.shape[:-1], 1), -1, z.dtype))
    # size >= 0: all True, and varying like ``z`` under shard_map (a constant is not).
    tau, _, _ = jax.lax.while_loop(shrinking, shrink, (tau, size, size >= 0))
    return tau


@jax.custom_jvp
def _sparsemax_last(x: jax.Array) -> jax.Array:
    """Sparsemax over the last axis of a float array."""
    # Shifted by the row's maximum: a row with one large score gives exactly 1 there.
    z = x - jnp.max(x, axis=-1, keepdims=True)
    return jnp.maximum(z - _threshold(z), 0)


@_sparsemax_last.defjvp
def _sparsemax_last_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    # The Jacobian on the support S is I − 1 1ᵀ / |S|, and 0 off it: project the tangent
    # on S and remove its mean there.
    (x,), (dx,) = primals, tangents
    probs = _sparsemax_last(x)
    support = probs > 0
    dx = jnp.where(support, dx, 0)
    mean = jnp.sum(dx, axis=-1, keepdims=True) / jnp.sum(support, axis=-1, keepdims=True)
    return probs, jnp.where(support, dx - mean, 0)


@jax.custom_jvp
def _shifted_conjugate(x: jax.Array, shift: jax.Array) -> jax.Array:
    """``Ω*(x) − shift`` over the last axis, Ω* the sparsemax's regularized max.

    ``Ω*(x) = ⟨p, x⟩ + ½ (1 − ‖p‖²)`` with ``p = sparsemax(x)``, the conjugate of
    ``Ω(p) = ½ (‖p‖² − 1)`` on the simplex. Written ``⟨p, x − shift⟩ + ½ (1 − ‖p‖²)`` over
    the support (``Σ p = 1``): the shift is subtracted before the sum, not after it, and an
    entry of ``x`` at −inf (off the support) is never multiplied. Its gradient is ``p``
    (Danskin) and ``−1`` for ``shift``, through ``sparsemax``'s own Jacobian at higher order.
    """
    return _conjugate_value(_sparsemax_last(x), x, shift)


def _conjugate_value(probs: jax.Array, x: jax.Array, shift: jax.Array) -> jax.Array:
    on_support = jnp.where(probs > 0, probs * (x - shift[..., None]), 0)
    return jnp.sum(on_support, axis=-1) + 0.5 * (1 - jnp.sum(jnp.square(probs), axis=-1))


@_shifted_conjugate.defjvp
def _shifted_conjugate_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    (x, shift), (dx, dshift) = primals, tangents
    probs = _sparsemax_last(x)
    tangent = jnp.sum(jnp.where(probs > 0, probs * dx, 0), axis=-1) - dshift
    return _conjugate_value(probs, x, shift), tangent


def sparsemax(logits: ArrayLike, *, axis: int = -1) -> jax.Array:
    r"""Sparsemax: the Euclidean projection of the scores onto the probability simplex.

    .. math::
      \operatorname{sparsemax}(x) = \operatorname*{argmin}_{p \in \Delta} \|p - x\|^2
        = \max(x - \tau(x), 0)

    with the threshold :math:`\tau` such that the probabilities sum to 1 (Martins &
    Astudillo 2016). Unlike softmax it gives exact zeros: the classes scored more than
    1 below the top one always get 0. Differentiable with the sparsemax Jacobian
    :math:`\operatorname{diag}(s) - s s^\top / |S|` (``s`` the support's indicator), also at
    higher order; on a tie at the threshold the class outside the support gets no gradient,
    as optax's ``projection_simplex``.

    Numerics: exact for ties (equal scores get exactly equal probabilities; a row of equal
    scores is uniform); a score of −inf gets probability 0 (a row of only −inf, or any +inf
    or NaN, gives NaN). The threshold comes from a few passes over the classes, without a
    sort (see ``jaxloss/structured/sparsemax.py``).

    Args:
      logits: scores ``[..., num_classes]`` (class axis at ``axis``); half precision is
        computed and returned in float32.
      axis: the class axis.

    Returns:
      Probabilities of the shape of ``logits`` (float32 for float32 and half inputs).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> jaxloss.sparsemax(jnp.array([1.5, 1.0, -2.0])).tolist()
      [0.75, 0.25, 0.0]

    References:
      Martins and Astudillo, "From Softmax to Sparsemax: A Sparse Model of Attention and
      Multi-Label Classification", 2016. https://arxiv.org/abs/1602.02068
    """
    x = _some_classes(_classes_last(logits, axis, "logits"))
    return jnp.moveaxis(_sparsemax_last(x), -1, axis)  # axis: checked by _classes_last


def _some_classes(x: jax.Array) -> jax.Array:
    """``x`` (classes last), or a ValueError if it has none: no simplex to project onto."""
    if x.shape[-1] == 0:
        raise ValueError(
            f"`logits` must have at least one class, got shape {x.shape} (classes last)."
        )
    return x


def _sparse_plus(x: jax.Array) -> jax.Array:
    """``jax.nn.sparse_plus`` with finite gradients at ±inf: 0, ``(x + 1)²/4``, ``x``.

    The quadratic piece is computed on ``x`` replaced by 0 outside ``(−1, 1)``, so its
    derivative (unselected there) is never ``0 · inf``; NaN takes it and stays NaN.
    """
    inner = jnp.where(jnp.abs(x) >= 1, 0, x)
    return jnp.where(x >= 1, x, jnp.where(x <= -1, 0, jnp.square(inner + 1) / 4))


def sparsemax_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Binary sparsemax loss, as optax's ``sparsemax_loss``; per element.

    .. math::
      \ell_i = \operatorname{sparse\_plus}(-x_i) \text{ if } y_i = 1, \quad
        \operatorname{sparse\_plus}(x_i) \text{ if } y_i = 0, \qquad
      \operatorname{sparse\_plus}(x) = \begin{cases}
        0 & x \le -1 \\ (x + 1)^2 / 4 & |x| < 1 \\ x & x \ge 1 \end{cases}

    the Fenchel–Young loss of the binary sparsemax (Blondel et al. 2020, Sec. 4.4), 0
    exactly where ``jax.nn.sparse_sigmoid(logits) == labels``: the sparse analogue of the
    logistic loss. As optax, any nonzero label counts as 1 (in checked mode, labels other
    than 0 and 1 are an error).

    Numerics: exact for any logit, ±inf included, with finite gradients there
    (``jax.nn.sparse_plus`` differentiates to NaN at ±inf); NaN propagates, from the labels
    too.

    Args:
      logits: real scores of any shape.
      labels: 0 or 1 (integer, boolean or float) of the same shape.
      where: optional boolean mask of that shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> jaxloss.sparsemax_loss(jnp.array([0.0, 2.0]), jnp.array([1, 1]), reduction="none")
      Array([0.25, 0.  ], dtype=float32)

    References:
      Blondel, Martins and Niculae, "Learning with Fenchel-Young Losses", JMLR 2020.
      https://arxiv.org/abs/1901.02324
    """
    logits = _checks.float_array(logits, "logits", allow_inf=True)
    labels = _labels.as_array(labels)
    if jnp.issubdtype(labels.dtype, jnp.floating):
        labels = _checks.float_array(labels, "labels")
    elif not jnp.issubdtype(labels.dtype, jnp.integer) and labels.dtype != jnp.bool_:
        raise TypeError(f"`labels` must be 0 or 1 (integer, boolean or float), got {labels.dtype}.")
    _checks.equal_shapes(logits=logits, labels=labels)
    _checked.value_check((labels == 0) | (labels == 1), "`labels` must be 0 or 1.")
    mask, (logits, labels) = masked_inputs(where, logits.shape, logits, labels)
    signed = jnp.where(labels != 0, -logits, logits)
    if jnp.issubdtype(labels.dtype, jnp.floating):
        signed = jnp.where(jnp.isnan(labels), labels.astype(signed.dtype), signed)
    return reduce_loss(_sparse_plus(signed), reduction, where=mask, axis_name=axis_name)


def multiclass_sparsemax_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Multiclass sparsemax loss, as optax's ``multiclass_sparsemax_loss``.

    .. math::
      \ell_i = \langle p_i, x_i - x_{i y_i} \rangle + \tfrac12 \left(1 - \|p_i\|^2\right),
      \qquad p_i = \operatorname{sparsemax}(x_i)

    the Fenchel–Young loss of sparsemax (Martins & Astudillo 2016): non-negative, 0 exactly
    when sparsemax puts all the mass on the label, with gradient ``p − onehot(y)``, the
    sparse analogue of cross-entropy's ``softmax − onehot(y)``. Labels outside
    ``[0, num_classes)`` are excluded (loss 0, not counted, zero gradient), as in
    :func:`cross_entropy`; optax reads the last class for a label of −1.

    Numerics: the label's score is subtracted before the sum over the support, so a
    confident correct prediction gives exactly 0; −inf scores off the label get
    probability 0 (a −inf at the label gives +inf).

    Args:
      logits: scores ``[..., num_classes]`` (class axis at ``axis``).
      labels: integer class ids of the logits' shape without the class axis.
      axis: the class axis of ``logits``.
      where: optional boolean mask, broadcastable to ``"none"``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.array([[1.5, 1.0, -2.0], [3.0, 0.0, 0.0]])
      >>> jaxloss.multiclass_sparsemax_loss(logits, jnp.array([1, 0]), reduction="none")
      Array([0.5625, 0.    ], dtype=float32)

    References:
      Martins and Astudillo, "From Softmax to Sparsemax: A Sparse Model of Attention and
      Multi-Label Classification", 2016. https://arxiv.org/abs/1602.02068
    """
    logits = _some_classes(_classes_last(logits, axis, "logits"))
    safe_labels, mask, logits = _integer_targets(labels, logits, "logits", None, where)
    loss = _shifted_conjugate(logits, _numerics.take_class(logits, safe_labels))
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)
