"""Losses of given pairs and triplets: contrastive, ratio, ranking, cosine embedding.

Each example is a pair or triplet of embeddings ``[..., dim]`` (or of scores, for
``margin_ranking``); the per-example loss has their leading shape. The triplet margin losses
are in ``triplets.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._deprecation import renamed
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName


def _hinge(x: jax.Array) -> jax.Array:
    """``max(x, 0)`` with torch's ``clamp_min`` gradient: 1 at ``x = 0`` (``relu`` gives 0).

    The 0 is selected by ``x < 0``, False for NaN, so a NaN stays NaN as in torch.
    """
    return jnp.where(x < 0, 0, x)


def _embeddings(**arrays: ArrayLike) -> tuple[tuple[jax.Array, ...], tuple[int, ...]]:
    """Float ``[..., dim]`` arrays broadcast together, and the per-example (leading) shape."""
    out, shape = _checks.broadcast_floats(allow_inf=False, **arrays)
    if len(shape) < 1:
        names = ", ".join(f"`{name}`" for name in arrays)
        raise ValueError(f"{names} need a feature axis [..., dim], got scalars.")
    return out, shape[:-1]


def _per_example(x: ArrayLike, shape: tuple[int, ...], name: str) -> jax.Array:
    """A per-pair target (``similar``, ``targets``) as float, broadcast to the per-example shape."""
    x = _checks.float_array(x, name, allow_int=True)
    return _checks.broadcast_to(x, shape, name, "the per-example loss (reduction='none')")


def contrastive(
    x1: ArrayLike,
    x2: ArrayLike,
    similar: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Contrastive loss of Hadsell, Chopra and LeCun (2006) for pairs.

    .. math::
      \ell_i = s_i \tfrac12 d_i^2 + (1 - s_i) \tfrac12 \max(0, m - d_i)^2,
      \qquad d_i = \|x_{1,i} - x_{2,i}\|_2

    Similar pairs (``s = 1``) are pulled together; dissimilar ones are pushed apart until
    they are ``margin`` away, and then left alone. The siamese loss of signature and face
    verification: one embedding per photo, a threshold on the distance decides "same".

    Numerics: the distance has a zero (not NaN) gradient at ``x1 = x2``, and the pull term is
    formed from the squared differences directly. Nothing is clamped beyond the hinge: past
    distances of ~1.8e19 the squared distance overflows float32, and a similar pair's loss is
    +inf, a dissimilar pair's NaN (``0 · inf``).

    Args:
      x1: ``[..., dim]`` first embeddings.
      x2: ``[..., dim]`` second embeddings (broadcast with ``x1``).
      similar: ``[...]`` 1 (or True) for a similar pair, 0 for a dissimilar one; values in
        between weight the two terms. Not ±1 (``cosine_embedding``'s and
        ``margin_ranking``'s targets): a concrete value outside ``[0, 1]`` raises, a traced
        one in checked mode.
      margin: m, the distance beyond which dissimilar pairs cost nothing.
      where: optional boolean mask of the per-pair shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per pair, ``[...]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-pair losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x1, x2 = jnp.array([[0.0, 0.0]]), jnp.array([[0.6, 0.8]])
      >>> float(jaxloss.contrastive(x1, x2, jnp.array([1.0])))  # d = 1
      0.5
      >>> float(jaxloss.contrastive(x1, x2, jnp.array([0.0]), margin=3.0))
      2.0

    References:
      Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an Invariant
      Mapping", CVPR 2006.
    """
    (x1, x2), shape = _embeddings(x1=x1, x2=x2)
    similar = _per_example(similar, shape, "similar")
    mask, (x1, x2, similar) = masked_inputs(where, shape, x1, x2, similar)
    # In [0, 1] (a concrete array at the call, a traced one in checked mode): ±1 targets,
    # as cosine_embedding's, made a dissimilar pair's loss -d²/2 + push, unbounded below.
    _checks.in_range(similar, "similar", low=0, high=1)
    distance = _numerics.distance(x1, x2)
    pull = 0.5 * jnp.square(distance)
    push = 0.5 * jnp.square(jnp.maximum(jnp.asarray(margin, distance.dtype) - distance, 0))
    loss = similar * pull + (1 - similar) * push
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def ratio_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""The ratio loss of Balntas et al. (2016) for triplets.

    .. math::
      \ell_i = \Big(\frac{e_+}{e_+ + e_-}\Big)^2 + \Big(1 - \frac{e_-}{e_+ + e_-}\Big)^2,
      \qquad e_\pm = e^{\|a_i - x_\pm\|_2}

    A softmax over the two distances that wants the positive's share to vanish; unlike a
    margin it never stops pulling, but saturates once the ratio is extreme. The shares are
    computed as sigmoids of the distance difference, so large distances do not overflow.

    Args:
      anchor: ``[..., dim]`` anchor embeddings.
      positive: ``[..., dim]`` embeddings of the anchor's class.
      negative: ``[..., dim]`` embeddings of another class.
      where: optional boolean mask of the per-triplet shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per triplet, ``[...]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-triplet losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> a = jnp.zeros((1, 2))
      >>> float(jaxloss.ratio_loss(a, jnp.ones((1, 2)), jnp.ones((1, 2))))  # equal distances
      0.5

    References:
      Balntas, Johns, Tang and Mikolajczyk, "PN-Net: Conjoined Triple Deep Network for
      Learning Local Image Descriptors", arXiv:1601.05030, 2016.
    """
    (a, pos, neg), shape = _embeddings(anchor=anchor, positive=positive, negative=negative)
    mask, (a, pos, neg) = masked_inputs(where, shape, a, pos, neg)
    d_pos, d_neg = _numerics.distance(a, pos), _numerics.distance(a, neg)
    positive_share = jax.nn.sigmoid(d_pos - d_neg)  # e+ / (e+ + e-)
    negative_share = jax.nn.sigmoid(d_neg - d_pos)  # e- / (e+ + e-)
    loss = jnp.square(positive_share) + jnp.square(1 - negative_share)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


@renamed(y="targets")
def margin_ranking(
    x1: ArrayLike,
    x2: ArrayLike,
    targets: ArrayLike,
    *,
    margin: ArrayLike = 0.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Margin ranking loss, as ``torch.nn.functional.margin_ranking_loss``.

    .. math::
      \ell_i = \max(0,\ -y_i (x_{1,i} - x_{2,i}) + m)

    ``targets`` :math:`y_i = 1` asks for ``x1`` to rank above ``x2`` by at least ``margin``, −1 the
    reverse: scores of a ranker or a reward model compared pairwise.

    Numerics: a hinge of a difference, finite for all finite inputs unless ``x1 − x2`` itself
    overflows float32; nothing is clamped beyond the ``max(0, ·)``, which keeps NaN: NaN in
    an input gives NaN.

    Args:
      x1: scores of any shape.
      x2: scores broadcastable with ``x1``.
      targets: 1 or -1 per pair, broadcastable with them.
      margin: m.
      where: optional boolean mask of the broadcast shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element, broadcast shape).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-element losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> float(jaxloss.margin_ranking(jnp.array([2.0]), jnp.array([1.5]), jnp.array([1.0]),
      ...                              margin=1.0))
      0.5
    """
    shape = _checks.broadcast_shapes(x1=x1, x2=x2, targets=targets)
    x1 = jnp.broadcast_to(_checks.float_array(x1, "x1"), shape)
    x2 = jnp.broadcast_to(_checks.float_array(x2, "x2"), shape)
    if jnp.asarray(targets).dtype == jnp.bool_:
        # False would read as 0: a constant `margin` with no gradient (torch raises too).
        raise TypeError("`targets` must be 1 or -1 (numbers), got booleans.")
    y = jnp.broadcast_to(_checks.float_array(targets, "targets", allow_int=True), shape)
    mask, (x1, x2, y) = masked_inputs(where, shape, x1, x2, y)
    loss = _hinge(-y * (x1 - x2) + jnp.asarray(margin, x1.dtype))
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


# torch's cosine_embedding_loss adds this to each squared norm, so zero vectors give cos = 0.
_COSINE_EPS = 1e-12


@renamed(y="targets")
def cosine_embedding(
    x1: ArrayLike,
    x2: ArrayLike,
    targets: ArrayLike,
    *,
    margin: ArrayLike = 0.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Cosine embedding loss, as ``torch.nn.functional.cosine_embedding_loss``.

    .. math::
      \ell_i = \begin{cases} 1 - \cos(x_{1,i}, x_{2,i}) & y_i = 1 \\
      \max(0, \cos(x_{1,i}, x_{2,i}) - m) & y_i = -1 \end{cases}

    with :math:`y` = ``targets``, and 0 for any other target, as torch. The cosine is
    ``x1·x2 / sqrt((‖x1‖² + 1e-12)(‖x2‖² + 1e-12))``, so a zero vector gives cos = 0.

    Numerics: finite while the product ``‖x1‖²·‖x2‖²`` fits float32, i.e. for
    ``‖x1‖·‖x2‖ ≲ 1.8e19``. Beyond, that product overflows to +inf (as in torch): the cosine
    reads 0, or NaN once ``x1·x2`` overflows too. NaN in an input (``targets`` included), or a NaN
    cosine, gives NaN whatever the target: a pair charged 0 still counts.

    Args:
      x1: ``[..., dim]`` first embeddings.
      x2: ``[..., dim]`` second embeddings (broadcast with ``x1``).
      targets: ``[...]`` 1 (similar) or -1 (dissimilar).
      margin: m, the cosine below which dissimilar pairs cost nothing.
      where: optional boolean mask of the per-pair shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per pair, ``[...]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-pair losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x1, x2 = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 2.0]])
      >>> float(jaxloss.cosine_embedding(x1, x2, jnp.array([1])))  # orthogonal
      1.0
    """
    (x1, x2), shape = _embeddings(x1=x1, x2=x2)
    y = _per_example(targets, shape, "targets")
    mask, (x1, x2, y) = masked_inputs(where, shape, x1, x2, y)
    squared_norms = (jnp.sum(jnp.square(x1), -1) + _COSINE_EPS) * (
        jnp.sum(jnp.square(x2), -1) + _COSINE_EPS
    )
    cos = jnp.sum(x1 * x2, axis=-1) / jnp.sqrt(squared_norms)
    dissimilar_loss = _hinge(cos - jnp.asarray(margin, cos.dtype))
    # Any other y costs 0 as in torch, yet counts: a NaN cosine or y there must still show.
    other_loss = 0 * (cos * y)
    loss = jnp.where(y == 1, 1 - cos, jnp.where(y == -1, dissimilar_loss, other_loss))
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)
