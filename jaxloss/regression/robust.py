"""Robust elementwise losses: the Charbonnier (L1-L2) penalty.

Like ``mae`` they grow linearly in the tails, so outliers do not dominate them; unlike it
they are smooth at 0. The per-element loss has the broadcast shape of ``predictions`` and
``targets``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._reduce import reduce_loss
from jaxloss._sharding import AxisName
from jaxloss.regression.elementwise import _weighted_pair


def charbonnier(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    epsilon: ArrayLike = 1e-3,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Charbonnier loss, a differentiable L1: the pixel loss of LapSRN and its successors.

    .. math::
      \ell_i = \sqrt{d_i^2 + \varepsilon^2}, \quad d_i = \text{predictions}_i - \text{targets}_i

    About ``|d|`` for errors much larger than ``epsilon`` (robust to outliers, as MAE) and
    ``ε + d²/(2ε)`` near 0, so its gradient ``d / ℓ`` is smooth and small errors are not
    pushed with MAE's constant force. Lai et al. (LapSRN) use ε = 1e-3 for images in
    [0, 1]; ``epsilon=0`` is MAE (with the gradient 0 at an exact match).

    kornia's ``charbonnier_loss`` is Barron's form at scale 1, ``sqrt(d² + 1) − 1``: this
    loss with ``epsilon=1.0``, minus 1.

    Numerics: computed as a hypot, ``sqrt(m) sqrt(m + n²/m)`` with ``m = max(|d|, ε)``,
    ``n = min(|d|, ε)`` (within 2 ulp, as ``jnp.hypot``), which neither overflows for large
    ``|d|`` (where ``d²`` would) nor loses the small ``d`` under ``ε``.

    Args:
      predictions: floating array of any shape (e.g. images ``[batch, height, width,
        channels]``).
      targets: array broadcastable with ``predictions``.
      epsilon: ε ≥ 0, the width of the quadratic zone around 0; may be traced.
      where: optional boolean mask broadcastable to the broadcast shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> # sqrt(3² + 4²) = 5 and sqrt(0² + 4²) = 4
      >>> jaxloss.charbonnier(jnp.array([3.0, 0.0]), jnp.zeros(2), epsilon=4.0,
      ...                     reduction="none").tolist()
      [5.0, 4.0]

    References:
      Charbonnier, Blanc-Féraud, Aubert and Barlaud, "Two deterministic half-quadratic
      regularization algorithms for computed imaging", ICIP 1994.
      https://doi.org/10.1109/ICIP.1994.413553
      Lai, Huang, Ahuja and Yang, "Deep Laplacian Pyramid Networks for Fast and Accurate
      Super-Resolution", CVPR 2017. https://arxiv.org/abs/1704.03915
    """
    _checks.in_range(epsilon, "epsilon", low=0)
    predictions, targets, _, mask = _weighted_pair(predictions, targets, None, where)
    loss = _charbonnier(predictions, targets, jnp.asarray(epsilon, predictions.dtype))
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def _hypot(a: jax.Array, b: jax.Array) -> jax.Array:
    """``sqrt(a² + b²)`` for ``a, b >= 0`` as ``sqrt(m) · sqrt(m + n · n/m)``, ``m = max``,
    ``n = min`` (within 2 ulp of float64's, as ``jnp.hypot``): no overflow for large inputs,
    and no select, so XLA:CPU sums it in one YNNPACK kernel (0 for ``a = b = 0``: the
    quotient's denominator is floored at the smallest normal)."""
    top, low = jnp.maximum(a, b), jnp.minimum(a, b)
    ratio = low / jnp.maximum(top, jnp.finfo(top.dtype).tiny)
    return jnp.sqrt(top) * jnp.sqrt(top + low * ratio)


def _charbonnier_partials(
    predictions: jax.Array, targets: jax.Array, epsilon: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    # d / ℓ and ε / ℓ, with ℓ as in the value; at d = ε = 0 (MAE at an exact match) the
    # gradient is 0 (ℓ is taken as 1 there). Not the value's floor: a literal constant
    # shared with the value's sum would be written out by XLA as an array for both.
    diff = predictions - targets
    size, epsilon_size = jnp.abs(diff), jnp.abs(epsilon)
    top, low = jnp.maximum(size, epsilon_size), jnp.minimum(size, epsilon_size)
    zero = top == 0
    safe_top = jnp.where(zero, 1, top)
    # Divided, not multiplied by 1 / ℓ, which is subnormal (flushed to 0) for ℓ > 8.5e37.
    length = jnp.sqrt(safe_top) * jnp.sqrt(safe_top + low * (low / safe_top))
    return diff / length, -diff / length, epsilon / length


@_numerics.elementwise(_charbonnier_partials, written=True)
def _charbonnier(predictions: jax.Array, targets: jax.Array, epsilon: jax.Array) -> jax.Array:
    """``hypot(predictions - targets, epsilon)``, with the gradient ``d / ℓ`` written out."""
    return _hypot(jnp.abs(predictions - targets), jnp.abs(epsilon))
