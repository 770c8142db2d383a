"""The Fenchel–Young loss of any regularized max, as optax's ``make_fenchel_young_loss``."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName


def fenchel_young(max_fun: Callable[[jax.Array], ArrayLike]) -> Callable[..., jax.Array]:
    r"""A loss from a regularized max: the Fenchel–Young loss, as optax's factory.

    .. math::
      \ell_i = \Omega^*(\theta_i) - \langle \theta_i, y_i \rangle,
      \qquad \nabla_\theta \ell_i = \nabla\Omega^*(\theta_i) - y_i

    for ``max_fun`` :math:`= \Omega^*`, a regularized max of a score vector (Blondel et al.
    2020): ``jax.nn.logsumexp`` gives softmax cross-entropy on probability targets, the
    plain ``jnp.max`` the perceptron, the sparsemax conjugate the sparsemax loss. As optax's,
    the value leaves out :math:`\Omega(y)` (a constant in the scores: the gradient is the
    same, and the value is the full loss for one-hot targets of those three); the gradient
    comes from autodiff of ``max_fun``, so :math:`\nabla\Omega^*` (softmax, argmax, sparsemax)
    is never written by hand.

    ``max_fun`` maps one score vector ``[num_classes]`` to a scalar and is applied to every
    row (``jnp.vectorize``, as optax). Give it options with ``functools.partial``.

    Args:
      max_fun: the regularized max :math:`\Omega^*`, ``[num_classes] -> []``.

    Returns:
      ``loss(scores, targets, *, where=None, reduction="mean", axis_name=None)``:
      ``scores`` ``[..., num_classes]`` (half precision computed in float32), ``targets``
      of the same shape (probabilities, or any point of the domain of Ω; a target of 0
      under a score of −inf adds 0, with a zero gradient for that target), ``where`` an
      optional boolean mask of the shape ``[...]``, ``reduction`` ``"mean"``, ``"sum"`` or
      ``"none"`` (the losses ``[...]``), ``axis_name`` the mapped axis of the batch (global
      mean and sum).

    Examples:
      >>> import jax, jax.numpy as jnp, jaxloss
      >>> loss = jaxloss.fenchel_young(jax.nn.logsumexp)  # cross-entropy on probabilities
      >>> scores, targets = jnp.array([[0.0, 0.0]]), jnp.array([[1.0, 0.0]])
      >>> round(float(loss(scores, targets)), 4)  # log 2
      0.6931

    References:
      Blondel, Martins and Niculae, "Learning with Fenchel-Young Losses", JMLR 2020.
      https://arxiv.org/abs/1901.02324
    """
    vectorized = jnp.vectorize(max_fun, signature="(n)->()")

    def fenchel_young_loss(
        scores: ArrayLike,
        targets: ArrayLike,
        *,
        where: ArrayLike | None = None,
        reduction: str = "mean",
        axis_name: AxisName = None,
    ) -> jax.Array:
        """``max_fun(scores) − ⟨scores, targets⟩`` over the last axis (see ``fenchel_young``)."""
        scores = _checks.float_array(scores, "scores", allow_inf=True)
        targets = _checks.float_array(targets, "targets", allow_int=True).astype(scores.dtype)
        if scores.ndim == 0:
            raise ValueError("`scores` must have a class axis, got a scalar.")
        _checks.equal_shapes(scores=scores, targets=targets)
        mask, (scores, targets) = masked_inputs(where, scores.shape[:-1], scores, targets)
        # 0 · (−inf) would be NaN: a zero target does not read a −inf score (double where,
        # so that the targets' gradient there is 0, not inf). A finite score is read: the
        # targets' gradient is −θ everywhere else, as optax's (a target of 0 included).
        read = jnp.where((targets == 0) & (scores == -jnp.inf), 0, scores)
        loss = vectorized(scores) - jnp.sum(read * targets, axis=-1)
        return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)

    fenchel_young_loss.__qualname__ = fenchel_young_loss.__name__ = (
        f"fenchel_young({getattr(max_fun, '__name__', type(max_fun).__name__)})"
    )
    return fenchel_young_loss
