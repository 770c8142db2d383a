"""Pairs, triplets and contrastive losses: metric learning from relations between examples.

Shapes: embeddings are ``[..., dim]`` (the last axis is the feature axis); the per-example
loss (``reduction="none"``) has their leading shape, ``[batch]`` for a batch of pairs or
triplets. ``batch_triplet`` takes one ``[batch, dim]`` batch with integer ``labels``
``[batch]`` and returns a scalar; ``nt_xent`` returns one value per pair ``[batch]``.

Distances are safe at zero: ``‖x - y‖`` has a zero (not NaN) gradient where ``x = y``, so
identical embeddings, collapsed features at initialization and an anchor's distance to itself
never poison a step.

``batch_triplet`` mines inside the ``[batch, batch]`` distance matrix with fixed shapes and
masks, so it runs under ``jit``; nothing of size ``batch³`` is ever built. Each anchor's
negative distances are sorted once; the semi-hard negative of a positive at distance ``d``
is then the first sorted value above ``d`` (a binary search), and the sum over every triplet
is a count and a prefix sum. With ``axis_name`` the mining and the mean run over the global
batch: every device's anchors see every device's embeddings (``all_gather``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._reduce import AxisName, _global_sum, gather_batch, masked_inputs, reduce_loss

MINING = ("all", "hard", "semihard")


def _hinge(x: jax.Array) -> jax.Array:
    """``max(x, 0)`` with torch's ``clamp_min`` gradient: 1 at ``x = 0`` (``relu`` gives 0).

    The 0 is selected by ``x < 0``, False for NaN, so a NaN stays NaN as in torch.
    """
    return jnp.where(x < 0, 0, x)


def _embeddings(**arrays: ArrayLike) -> tuple[tuple[jax.Array, ...], tuple[int, ...]]:
    """Float ``[..., dim]`` arrays broadcast together, and the per-example (leading) shape."""
    out, shape = _checks.broadcast_floats(**arrays)
    if len(shape) < 1:
        names = ", ".join(f"`{name}`" for name in arrays)
        raise ValueError(f"{names} need a feature axis [..., dim], got scalars.")
    return out, shape[:-1]


def _per_example(x: ArrayLike, shape: tuple[int, ...], name: str) -> jax.Array:
    """A per-pair target (``similar``, ``y``) as float, broadcast to the per-example shape."""
    x = _checks.float_array(x, name, allow_int=True)
    return _checks.broadcast_to(x, shape, name, "the per-example loss (reduction='none')")


def _lp_distance(diff: jax.Array, p: ArrayLike) -> jax.Array:
    """``(Σ |d|^p)^(1/p)`` over the last axis, finite gradients where ``d = 0``.

    A concrete ``p`` of 2, 1 or inf takes its direct form; other values (and traced ones)
    the general one.
    """
    if isinstance(p, (int, float)):
        if p == 2:
            return _numerics.safe_norm(diff)
        if p == 1:
            return jnp.sum(_numerics.abs_zero_subgradient(diff), axis=-1)
        if p == np.inf:
            return jnp.max(_numerics.abs_zero_subgradient(diff), axis=-1)
    p = jnp.asarray(p, diff.dtype)
    powered = jnp.sum(_numerics.safe_pow(_numerics.abs_zero_subgradient(diff), p), axis=-1)
    return _numerics.safe_pow(powered, 1 / p)


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
        between weight the two terms.
      margin: m, the distance beyond which dissimilar pairs cost nothing.
      where: optional boolean mask of the per-pair shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per pair, ``[...]``).
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

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
    diff = x1 - x2
    distance = _numerics.safe_norm(diff)
    pull = 0.5 * jnp.sum(jnp.square(diff), axis=-1)
    push = 0.5 * jnp.square(jnp.maximum(jnp.asarray(margin, distance.dtype) - distance, 0))
    loss = similar * pull + (1 - similar) * push
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def triplet_margin(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    p: ArrayLike = 2.0,
    eps: ArrayLike = 1e-6,
    swap: bool = False,
    squared: bool = False,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Triplet margin loss, as ``torch.nn.functional.triplet_margin_loss``.

    .. math::
      \ell_i = \max(0,\ d(a_i, p_i) - d(a_i, n_i) + m), \qquad
      d(x, y) = \|x - y + \epsilon\|_p

    as torch's ``pairwise_distance`` (the ε is added to the difference). With ``swap``
    (Balntas et al. 2016) the negative distance is ``min(d(a, n), d(p, n))``. With
    ``squared=True`` it is FaceNet's form, ``d(x, y) = ‖x - y‖²`` (no ε; ``p`` must be 2).

    Every ``p > 0`` is a true norm of the absolute difference (optax's triplet loss omits
    the absolute value, so odd ``p`` give wrong distances there). Gradients are finite at
    zero differences for any ``p``, and NaN in an input gives NaN (the hinge keeps it).

    Args:
      anchor: ``[..., dim]`` anchor embeddings.
      positive: ``[..., dim]`` embeddings of the anchor's class.
      negative: ``[..., dim]`` embeddings of another class.
      margin: m, how much closer the positive must be than the negative.
      p: the norm's order (> 0; ``float("inf")`` for the max norm).
      eps: added to each difference, as torch.
      swap: use the harder of the two negative distances.
      squared: FaceNet's squared Euclidean distances instead.
      where: optional boolean mask of the per-triplet shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per triplet, ``[...]``).
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

    Returns:
      A float32 scalar, or the per-triplet losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> a, pos, neg = jnp.zeros((1, 2)), jnp.array([[1.0, 0.0]]), jnp.array([[3.0, 0.0]])
      >>> float(jaxloss.triplet_margin(a, pos, neg, margin=1.0, eps=0.0))
      0.0
      >>> float(jaxloss.triplet_margin(a, pos, neg, margin=3.0, eps=0.0))
      1.0

    References:
      Schroff, Kalenichenko and Philbin, "FaceNet: A Unified Embedding for Face
      Recognition and Clustering", CVPR 2015. Balntas, Riba, Ponsa and Mikolajczyk,
      "Learning local feature descriptors with triplets and shallow convolutional neural
      networks", BMVC 2016.
    """
    _checks.in_range(p, "p", low=0, low_open=True)
    _checks.in_range(eps, "eps", low=0)
    if isinstance(p, (int, float)) and not p > 0:
        raise ValueError(f"`p` must be > 0, got {p}.")
    if squared and not (isinstance(p, (int, float)) and p == 2):
        raise ValueError(f"`squared=True` is the squared Euclidean distance; got p={p}.")
    (a, pos, neg), shape = _embeddings(anchor=anchor, positive=positive, negative=negative)
    mask, (a, pos, neg) = masked_inputs(where, shape, a, pos, neg)
    if squared:

        def distance(x, y):
            return jnp.sum(jnp.square(x - y), axis=-1)

    else:
        eps = jnp.asarray(eps, a.dtype)

        def distance(x, y):
            return _lp_distance(x - y + eps, p)

    d_neg = distance(a, neg)
    if swap:
        d_neg = jnp.minimum(d_neg, distance(pos, neg))
    loss = _hinge(distance(a, pos) - d_neg + jnp.asarray(margin, a.dtype))
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
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

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
    d_pos, d_neg = _numerics.safe_norm(a - pos), _numerics.safe_norm(a - neg)
    positive_share = jax.nn.sigmoid(d_pos - d_neg)  # e+ / (e+ + e-)
    negative_share = jax.nn.sigmoid(d_neg - d_pos)  # e- / (e+ + e-)
    loss = jnp.square(positive_share) + jnp.square(1 - negative_share)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def margin_ranking(
    x1: ArrayLike,
    x2: ArrayLike,
    y: ArrayLike,
    *,
    margin: ArrayLike = 0.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Margin ranking loss, as ``torch.nn.functional.margin_ranking_loss``.

    .. math::
      \ell_i = \max(0,\ -y_i (x_{1,i} - x_{2,i}) + m)

    ``y = 1`` asks for ``x1`` to rank above ``x2`` by at least ``margin``, ``y = -1`` the
    reverse: scores of a ranker or a reward model compared pairwise.

    Numerics: a hinge of a difference, finite for all finite inputs unless ``x1 − x2`` itself
    overflows float32; nothing is clamped beyond the ``max(0, ·)``, which keeps NaN: NaN in
    an input gives NaN.

    Args:
      x1: scores of any shape.
      x2: scores broadcastable with ``x1``.
      y: 1 or -1 per pair, broadcastable with them.
      margin: m.
      where: optional boolean mask of the broadcast shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per element, broadcast shape).
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

    Returns:
      A float32 scalar, or the per-element losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> float(jaxloss.margin_ranking(jnp.array([2.0]), jnp.array([1.5]), jnp.array([1.0]),
      ...                              margin=1.0))
      0.5
    """
    shape = _checks.broadcast_shapes(x1=x1, x2=x2, y=y)
    x1 = jnp.broadcast_to(_checks.float_array(x1, "x1"), shape)
    x2 = jnp.broadcast_to(_checks.float_array(x2, "x2"), shape)
    y = jnp.broadcast_to(_checks.float_array(y, "y", allow_int=True), shape)
    mask, (x1, x2, y) = masked_inputs(where, shape, x1, x2, y)
    loss = _hinge(-y * (x1 - x2) + jnp.asarray(margin, x1.dtype))
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


# torch's cosine_embedding_loss adds this to each squared norm, so zero vectors give cos = 0.
_COSINE_EPS = 1e-12


def cosine_embedding(
    x1: ArrayLike,
    x2: ArrayLike,
    y: ArrayLike,
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

    and 0 for any other ``y``, as torch. The cosine is
    ``x1·x2 / sqrt((‖x1‖² + 1e-12)(‖x2‖² + 1e-12))``, so a zero vector gives cos = 0.

    Numerics: finite while the product ``‖x1‖²·‖x2‖²`` fits float32, i.e. for
    ``‖x1‖·‖x2‖ ≲ 1.8e19``. Beyond, that product overflows to +inf (as in torch): the cosine
    reads 0, or NaN once ``x1·x2`` overflows too. NaN in an input (``y`` included), or a NaN
    cosine, gives NaN whatever ``y``: a pair charged 0 still counts.

    Args:
      x1: ``[..., dim]`` first embeddings.
      x2: ``[..., dim]`` second embeddings (broadcast with ``x1``).
      y: ``[...]`` 1 (similar) or -1 (dissimilar).
      margin: m, the cosine below which dissimilar pairs cost nothing.
      where: optional boolean mask of the per-pair shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per pair, ``[...]``).
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

    Returns:
      A float32 scalar, or the per-pair losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x1, x2 = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 2.0]])
      >>> float(jaxloss.cosine_embedding(x1, x2, jnp.array([1])))  # orthogonal
      1.0
    """
    (x1, x2), shape = _embeddings(x1=x1, x2=x2)
    y = _per_example(y, shape, "y")
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


def _kept_rows(where: ArrayLike | None, *arrays: jax.Array):
    """The ``[batch]`` kept mask (all True without ``where``), and ``arrays`` with their
    masked rows zeroed: a NaN there must not reach the other rows through the
    similarities or distances."""
    kept, arrays = masked_inputs(where, arrays[0].shape[:1], *arrays)
    return (jnp.ones(arrays[0].shape[:1], bool) if kept is None else kept), arrays


def _batch(embeddings, labels, where, axis_name):
    """Checks a ``[batch, dim]`` batch; returns local and global views and this device's rows.

    Returns:
      ``(x, labels, kept, all_x, all_labels, all_kept, rows)``: the local embeddings,
      labels and kept mask, the same over the global batch, and the local rows' global
      indices ``[batch]``.
    """
    x = _checks.rows(embeddings, "embeddings")
    labels = _checks.per_row(_checks.integer_array(labels, "labels"), x.shape[0], "labels")
    kept, (x,) = _kept_rows(where, x)
    all_x, offset = gather_batch(x, axis_name)
    all_labels, _ = gather_batch(labels, axis_name)
    all_kept, _ = gather_batch(kept, axis_name)
    rows = offset + jnp.arange(x.shape[0])
    return x, labels, kept, all_x, all_labels, all_kept, rows


def _pairwise_distances(x: jax.Array, y: jax.Array, squared: bool) -> tuple[jax.Array, jax.Array]:
    """``[n, m]`` Euclidean (or squared) distances, via ``‖x‖² + ‖y‖² - 2 x·y``, and a
    scalar that is 0, or NaN if a row of ``x`` is not finite.

    Squared distances are clamped at 0 (rounding can make them slightly negative); the
    square root has a zero gradient at 0, so an anchor's distance to itself and identical
    embeddings stay finite.

    A NaN row reaches every gradient through the matrix (``0 · NaN`` in the backward pass of
    entries no triplet uses), but mining may drop it from the value: the scalar, NaN exactly
    then, lets the caller put it back, from norms computed anyway.
    """
    x_squared_norms = jnp.sum(jnp.square(x), axis=1)
    squared_distances = (
        x_squared_norms[:, None]
        + jnp.sum(jnp.square(y), axis=1)[None, :]
        - 2 * jnp.einsum("nd,md->nm", x, y)
    )
    squared_distances = jnp.maximum(squared_distances, 0)
    nan_if_not_finite = 0 * jnp.sum(x_squared_norms)
    if squared:
        return squared_distances, nan_if_not_finite
    return _numerics.safe_sqrt(squared_distances), nan_if_not_finite


def _search_rows(sorted_rows: jax.Array, values: jax.Array, side: str) -> jax.Array:
    """``searchsorted`` of each row of ``values`` in the same row of ``sorted_rows``."""
    return jax.vmap(lambda row, v: jnp.searchsorted(row, v, side=side))(sorted_rows, values)


def batch_triplet(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    mining: str = "all",
    squared: bool = False,
    where: ArrayLike | None = None,
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Triplet loss over every triplet a batch holds, with online mining; a scalar.

    With distances :math:`D_{ij}` between the batch's embeddings, a positive of anchor
    ``a`` is another example of its label and a negative one of another label, and
    :math:`\ell_{apn} = D_{ap} - D_{an} + m`:

    * ``"all"``: the mean of :math:`\ell_{apn}` over the triplets where it is > 0 (the
      "batch all" strategy; easy triplets would otherwise dilute the mean);
    * ``"hard"``: batch-hard (Hermans et al. 2017), per anchor
      :math:`\max(0, \max_p D_{ap} - \min_n D_{an} + m)`, the mean over anchors that have a
      positive and a negative;
    * ``"semihard"``: FaceNet's semi-hard negatives as TF-Addons'
      ``triplet_semihard_loss``: per anchor-positive pair the closest negative farther than
      the positive, or, if there is none, the farthest negative; the mean of
      :math:`\max(0, \ell)` over pairs.

    Anchors without a positive, or without a negative, contribute nothing and are not
    counted (TF-Addons would charge a pair whose anchor has no negative ``m + D_ap``).
    Everything is a fixed-shape masked computation on the ``[batch, batch]`` distance
    matrix (sorted negatives and binary searches, O(batch²) memory), so it runs under
    ``jit`` and ``vmap``.

    Numerics: distances come from the Gram form ``‖x‖² + ‖y‖² − 2 x·y``, clamped at 0 against
    rounding, with a square root whose gradient is 0 at 0; this needs squared norms within
    float32 (``‖x‖ ≲ 1.8e19``) and loses absolute precision for nearby points far from the
    origin (the rounding error grows with ``‖x‖²``). The ±inf that pad missing positives and
    negatives never reach the loss, and a batch with no triplet gives 0. NaN or inf in an
    unmasked embedding gives NaN, even if mining leaves it out of every triplet: it reaches
    every gradient through the distance matrix.

    Args:
      embeddings: ``[batch, dim]``.
      labels: ``[batch]`` integer identity of each embedding.
      margin: m.
      mining: ``"all"``, ``"hard"`` or ``"semihard"`` (static).
      squared: squared Euclidean distances instead of Euclidean ones.
      where: optional ``[batch]`` boolean mask; masked examples take no part at all (as
        anchors, positives or negatives).
      axis_name: mapped axis over which the batch is split: the triplets, the mining and the
        mean are those of the global batch.

    Returns:
      A float32 scalar; 0 when the batch holds no triplet.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[0.0], [1.0], [3.0], [7.0]])
      >>> float(jaxloss.batch_triplet(x, jnp.array([0, 0, 1, 1]), mining="hard"))
      0.75

    References:
      Schroff, Kalenichenko and Philbin, "FaceNet: A Unified Embedding for Face
      Recognition and Clustering", CVPR 2015. Hermans, Beyer and Leibe, "In Defense of the
      Triplet Loss for Person Re-Identification", arXiv:1703.07737, 2017.
    """
    _checks.choice(mining, MINING, "mining")
    x, labels, kept, all_x, all_labels, all_kept, rows = _batch(
        embeddings, labels, where, axis_name
    )
    distances, nan_if_not_finite = _pairwise_distances(x, all_x, squared)
    # Every device's rows reach every device's gradients, so a NaN on one must show on all.
    nan_if_not_finite = _global_sum(nan_if_not_finite, axis_name)
    same = labels[:, None] == all_labels[None, :]
    others = kept[:, None] & all_kept[None, :]
    is_positive = others & same & (rows[:, None] != jnp.arange(all_x.shape[0])[None, :])
    is_negative = others & ~same
    has_negative = jnp.any(is_negative, axis=1)
    margin = jnp.asarray(margin, distances.dtype)

    if mining == "hard":
        # The initial values let a batch of 0 rows reduce over its empty axis.
        hardest_positive = jnp.max(distances, axis=1, where=is_positive, initial=-jnp.inf)
        hardest_negative = jnp.min(distances, axis=1, where=is_negative, initial=jnp.inf)
        counted = jnp.any(is_positive, axis=1) & has_negative
        loss = jnp.where(counted, hardest_positive - hardest_negative + margin, 0)
        loss = reduce_loss(jnp.maximum(loss, 0), where=counted, axis_name=axis_name)
        return loss + nan_if_not_finite

    # Each anchor's negative distances in ascending order, +inf past its last negative.
    sorted_negatives = jnp.sort(jnp.where(is_negative, distances, jnp.inf), axis=1)
    counted = is_positive & has_negative[:, None]
    if mining == "semihard":
        # The first negative farther than the positive, else the farthest negative.
        first_farther = _search_rows(sorted_negatives, distances, "right")
        num_negatives = jnp.sum(is_negative, axis=1)
        farther_exists = first_farther < num_negatives[:, None]
        index = jnp.where(farther_exists, first_farther, num_negatives[:, None] - 1)
        negative = jnp.take_along_axis(sorted_negatives, jnp.maximum(index, 0), axis=1)
        loss = jnp.where(counted, distances - jnp.where(counted, negative, 0) + margin, 0)
        loss = reduce_loss(jnp.maximum(loss, 0), where=counted, axis_name=axis_name)
        return loss + nan_if_not_finite

    # "all": for the pair (a, p), the negatives with l > 0 are the first k of the sorted
    # row, k = #{n: D_an < D_ap + m}; their losses add up to k (D_ap + m) - (prefix sum).
    threshold = distances + margin
    active = _search_rows(sorted_negatives, threshold, "left")
    active = jnp.where(counted, active, 0)
    prefix = jnp.cumsum(jnp.where(jnp.isfinite(sorted_negatives), sorted_negatives, 0), axis=1)
    active_sum = jnp.where(
        active > 0, jnp.take_along_axis(prefix, jnp.maximum(active - 1, 0), axis=1), 0
    )
    pair_total = jnp.where(counted, active * threshold - active_sum, 0)
    loss = reduce_loss(
        pair_total, where=counted, mean_weights=active.astype(pair_total.dtype), axis_name=axis_name
    )
    return loss + nan_if_not_finite


def nt_xent(
    z1: ArrayLike,
    z2: ArrayLike,
    *,
    temperature: ArrayLike = 0.1,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR.

    The ``2N`` embeddings of ``N`` pairs (two views of each example) are L2-normalized;
    each one's positive is its pair's other view and its negatives are the ``2N - 2``
    other embeddings:

    .. math::
      \ell_i = -\log \frac{\exp(\cos(u_i, u_{j(i)}) / \tau)}
      {\sum_{k \ne i} \exp(\cos(u_i, u_k) / \tau)}

    The per-pair value is the mean of its two views' losses, so the ``"mean"`` is SimCLR's
    mean over all ``2N`` embeddings.

    Numerics: embeddings are normalized by their norms floored at 1e-12 (a zero embedding has
    cosine 0 with every other), so the logits are cosines divided by τ and the normalizer is a
    log-sum-exp: finite for finite inputs and any ``τ > 0`` whose ``1/τ`` is finite. Masked
    pairs are zeroed before any similarity, and an anchor left without candidates gets a finite
    (unused) value.

    Args:
      z1: ``[batch, dim]`` embeddings of the first views.
      z2: ``[batch, dim]`` embeddings of the second views.
      temperature: τ.
      where: optional ``[batch]`` boolean mask; masked pairs are neither anchors nor
        negatives (equal to dropping them).
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per pair, ``[batch]``).
      axis_name: mapped axis over which the batch is split: the negatives come from every
        device and the mean is over the global batch.

    Returns:
      A float32 scalar, or the per-pair losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> z = jnp.eye(2)
      >>> round(float(jaxloss.nt_xent(z, z, temperature=1.0)), 4)
      0.5514

    References:
      Chen, Kornblith, Norouzi and Hinton, "A Simple Framework for Contrastive Learning of
      Visual Representations", ICML 2020.
    """
    _checks.in_range(temperature, "temperature", low=0, low_open=True)
    z1, z2 = _checks.rows(z1, "z1"), _checks.rows(z2, "z2")
    _checks.equal_shapes(z1=z1, z2=z2)
    batch = z1.shape[0]
    kept, (z1, z2) = _kept_rows(where, z1, z2)
    u1, u2 = _numerics.l2_normalize(z1), _numerics.l2_normalize(z2)
    all_u1, offset = gather_batch(u1, axis_name)
    all_u2, _ = gather_batch(u2, axis_name)
    all_kept, _ = gather_batch(kept, axis_name)
    inverse_temperature = 1 / jnp.asarray(temperature, u1.dtype)
    anchors = jnp.concatenate([u1, u2])  # [2 batch, dim]
    candidates = jnp.concatenate([all_u1, all_u2])  # [2 global batch, dim]
    logits = jnp.einsum("nd,md->nm", anchors, candidates) * inverse_temperature
    rows = offset + jnp.arange(batch)
    themselves = jnp.concatenate([rows, rows + all_u1.shape[0]])
    allowed = jnp.concatenate([all_kept, all_kept])[None, :] & (
        themselves[:, None] != jnp.arange(candidates.shape[0])[None, :]
    )
    # A masked anchor may have nothing left; any finite row keeps its (unused) value finite.
    allowed = allowed | ~jnp.any(allowed, axis=1, keepdims=True)
    normalizer = jax.nn.logsumexp(jnp.where(allowed, logits, -jnp.inf), axis=1)
    positive = jnp.sum(u1 * u2, axis=1) * inverse_temperature
    per_view = normalizer - jnp.concatenate([positive, positive])
    loss = 0.5 * (per_view[:batch] + per_view[batch:])
    return reduce_loss(loss, reduction, where=kept, axis_name=axis_name)
