"""The class rows shared by the margin family: label rows, Partial FC, counted rows.

Every loss of the family scores rows ``x`` ``[batch, dim]`` against class rows ``w``
``[num_classes, dim]``, possibly split by class over ``class_axis_name`` (labels are then
global ids). These helpers take the label's class row from the shard that holds it, gather
the batch for Partial FC, decide which rows count, and give the log-sum-exp over every
shard's non-target classes (``_kernels.chunked_logsumexp`` on each shard, combined).
``margin_softmax`` puts them together for the heads, which differ in their target logit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _numerics
from jaxloss._kernels.chunked_logsumexp import lse_excluding_targets
from jaxloss._kernels.class_blocks import class_logsumexp
from jaxloss._labels import counted_labels, widened
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import (
    AxisName,
    gather_batch,
    global_sum,
    logsumexp_over_shards,
    shard_offset,
)


def label_rows(
    w: jax.Array, labels: jax.Array, class_axis_name: AxisName
) -> tuple[jax.Array, jax.Array]:
    """``w[labels]`` for global labels with ``w`` possibly sharded by class.

    Returns:
      The rows ``[batch, ...]`` (0 for a label no shard holds), and the labels local to this
      shard (out of range where another shard holds them).
    """
    local_count = w.shape[0]
    offset, _ = shard_offset(local_count, class_axis_name)
    # Widened (a no-op for the labels of _checks.integer_array) before the offset: uint8
    # labels minus an int32 offset, or compared with 256 classes, would wrap.
    local = widened(labels) - offset
    here = (local >= 0) & (local < local_count)
    rows = jnp.take(w, jnp.where(here, local, 0), axis=0)
    rows = jnp.where(here.reshape(here.shape + (1,) * (rows.ndim - 1)), rows, 0)
    return global_sum(rows, class_axis_name), local


def global_num_classes(w: jax.Array, class_axis_name: AxisName) -> int:
    """The number of classes over every shard of ``w``."""
    return shard_offset(w.shape[0], class_axis_name)[1]


def same_devices(axis_name: AxisName, class_axis_name: AxisName) -> bool:
    """Whether the batch and the classes are split over the same mapped axes."""
    if axis_name is None or class_axis_name is None:
        return False
    batch_axes, class_axes = (
        frozenset([a] if isinstance(a, str) else a) for a in (axis_name, class_axis_name)
    )
    if batch_axes != class_axes and batch_axes & class_axes:
        raise ValueError(
            f"`axis_name` {axis_name!r} and `class_axis_name` {class_axis_name!r} share some "
            "axes but not all: split the batch and the classes over the same axes (Partial "
            "FC) or over disjoint ones."
        )
    return batch_axes == class_axes


def partial_fc(
    x: jax.Array,
    labels: jax.Array,
    where: ArrayLike | None,
    axis_name: AxisName,
    class_axis_name: AxisName,
) -> tuple[jax.Array, jax.Array, ArrayLike | None, Callable[[jax.Array], jax.Array]]:
    """The global batch when the batch and the classes are split over the same devices.

    As in Partial FC (An et al. 2021), every device then scores the embeddings of all
    devices against its own classes; the normalizers are summed over the class shards, and
    each device keeps its own rows' losses, reduced over ``axis_name`` as usual.

    Returns:
      ``(x, labels, where, local)``: the rows to score (all devices' or this one's) and
      ``local``, which takes this device's rows of a ``[rows]`` array.
    """
    if not same_devices(axis_name, class_axis_name):
        return x, labels, where, lambda v: v
    rows = x.shape[0]
    where = _checks.mask(where, labels.shape)
    x, offset = gather_batch(x, axis_name)
    labels, _ = gather_batch(labels, axis_name)
    if where is not None:
        where, _ = gather_batch(where, axis_name)
    return x, labels, where, lambda v: jax.lax.dynamic_slice_in_dim(v, offset, rows)


def check_labels(
    labels: jax.Array,
    w: jax.Array,
    class_axis_name: AxisName,
    where: ArrayLike | None,
    ignore_index: int | None = None,
) -> None:
    """Checked mode: every unmasked label is a (global) class id or ``ignore_index``."""
    mask = _checks.mask(where, labels.shape)
    _checked.class_ids(
        labels, global_num_classes(w, class_axis_name), ignore_index=ignore_index, where=mask
    )


def counted_rows(
    x: jax.Array,
    labels: jax.Array,
    w: jax.Array,
    where: ArrayLike | None,
    class_axis_name: AxisName,
    ignore_index: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """The masking door of the heads: ``(mask, x)`` with the rows that do not count zeroed.

    A row counts if ``where`` keeps it and its label is a class id (not ``ignore_index``).
    The others are zeroed before any arithmetic: the class rows' gradient is a sum over
    the batch (``p.T @ x``, ``target - x``), where ``0 · NaN`` would be NaN.
    """
    counted = counted_labels(labels, global_num_classes(w, class_axis_name), ignore_index)
    mask, (x,) = masked_inputs(where, labels.shape, x, counted=counted)
    return mask, x


def non_target_logsumexp(
    rows: jax.Array,
    w: jax.Array,
    local_labels: jax.Array,
    bias: jax.Array | None,
    column_scale: jax.Array | None,
    chunk_size: int | None,
    class_axis_name: AxisName,
) -> jax.Array:
    """log Σ over every non-target class (all shards) of ``s_j rows · w_j + b_j``."""
    local = lse_excluding_targets(
        rows, w, local_labels, bias, column_scale=column_scale, chunk_size=chunk_size
    )
    return logsumexp_over_shards(local, class_axis_name)


class TargetRows(NamedTuple):
    """What a head's target logit may read besides ``cos θ_y`` and the scale, row by row.

    Attributes:
      x: ``[n, dim]`` the scored rows as given (not normalized), rows that do not count
        zeroed; every device's rows under Partial FC.
      ids: ``[n]`` their indices in the global batch (a per-example draw keyed by them is
        the same on one device and on many).
      values: the ``per_row`` dict given to ``margin_softmax`` (``[batch]`` arrays),
        gathered like the rows; rows that do not count zeroed. Empty without one.
      counted: ``[n]`` bool, the rows that count.
    """

    x: jax.Array
    ids: jax.Array
    values: dict[str, jax.Array]
    counted: jax.Array


class ScoredRows(NamedTuple):
    """What a head's non-target logits may read besides the cosines, row by row.

    Float arrays only: the class-block kernel differentiates them.

    Attributes:
      scale: ``[n]`` the row scale (``scale``, or ‖x‖ without one).
      cos_target: ``[n]`` cos θ_y, clipped to [-1, 1] (CurricularFace's hard negatives
        are the classes closer than the target with its margin).
      values: the ``per_row`` arrays, as in :class:`TargetRows`.
    """

    scale: jax.Array
    cos_target: jax.Array
    values: dict[str, jax.Array]


ClassCosines = Callable[[jax.Array, jax.Array], jax.Array]
"""``(unit rows [n, dim], class rows [m, ..., dim]) -> [n, m]``: cos θ of each row to each
class, from the class rows as given (not normalized). Pure: it is re-run per class block."""
NonTargetLogits = Callable[[jax.Array, ScoredRows], jax.Array]
"""``(cos [n, m], rows) -> [n, m]``: the logits of the non-target classes. Pure, as above:
anything traced (a margin, CurricularFace's t) comes in ``rows.values``."""


def plain_cosines(unit_x: jax.Array, class_rows: jax.Array) -> jax.Array:
    """cos θ_j = x̂ · ŵ_j, one row per class."""
    return unit_x @ _numerics.l2_normalize(class_rows).T


def sub_center_cosines(unit_x: jax.Array, sub_centers: jax.Array) -> jax.Array:
    """cos(x, w_jk) for each class j and sub-center k, ``[n, m, K]``.

    One matrix product against the ``[m·K, dim]`` rows, reshaped: XLA:CPU runs the
    ``"nd,mkd->nmk"`` contraction, and its gradient, as a batched product about 2× slower.
    Reduce over K with ``_numerics``' class-by-class helpers (``class_max``,
    ``class_columns``): K - 1 elementwise operations, faster than a reduction over a last
    axis of a few entries.

    Args:
      unit_x: ``[n, dim]`` unit rows.
      sub_centers: ``[m, K, dim]`` class sub-centers (any norm).
    """
    m, k, dim = sub_centers.shape
    unit = _numerics.l2_normalize(sub_centers).reshape(m * k, dim)
    return (unit_x @ unit.T).reshape(unit_x.shape[0], m, k)


def scaled_cosines(cos: jax.Array, rows: ScoredRows) -> jax.Array:
    """The plain non-target logits ``row_scale · cos θ_j``."""
    return rows.scale[:, None] * cos


def scored_non_target_logsumexp(
    unit_x: jax.Array,
    w: jax.Array,
    labels: jax.Array,
    rows: ScoredRows,
    cosines: ClassCosines,
    non_target: NonTargetLogits,
    chunk_size: int | None,
    class_axis_name: AxisName,
) -> jax.Array:
    """log Σ over every non-target class (all shards) of ``non_target(cosines(x̂, w_j))``,
    in class blocks (``_kernels.class_blocks``): any class scorer, exact gradients."""

    def logits(r: tuple[jax.Array, ScoredRows], block: jax.Array, _: jax.Array) -> jax.Array:
        return non_target(cosines(r[0], block), r[1])

    first_id, _ = shard_offset(w.shape[0], class_axis_name)
    local = class_logsumexp(
        logits, (unit_x, rows), w, labels, first_id=first_id, chunk_size=chunk_size
    )
    return logsumexp_over_shards(local, class_axis_name)


def margin_softmax(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    target_logit: Callable[[jax.Array, jax.Array, TargetRows], jax.Array],
    *,
    normalize_embeddings: bool,
    scale: ArrayLike | None,
    where: ArrayLike | None,
    reduction: str,
    chunk_size: int | None,
    axis_name: AxisName,
    class_axis_name: AxisName,
    per_row: Mapping[str, ArrayLike] | None = None,
    cosines: ClassCosines | None = None,
    non_target: NonTargetLogits | None = None,
    classes_name: str = "centers",
) -> jax.Array:
    """The margin heads' shared path: ``target_logit(cos θ_y, row_scale, rows)`` gives each
    its margin.

    Non-target logits are ``row_scale · cos θ_j``; ``row_scale`` is ``scale``, or ‖x‖ when
    ``scale`` is None (SphereFace's original form, with unnormalized embeddings).
    ``per_row`` maps option names to ``[batch]`` arrays (per-example margins) that reach
    ``target_logit`` in ``rows.values``, aligned with the rows it scores.

    ``cosines`` (how a row scores a class: Sub-center ArcFace's max over sub-centers, its
    centers ``[num_classes, ..., dim]``) and ``non_target`` (the non-target logits from
    their cosines: CurricularFace's reweighted hard negatives) replace the plain ones; with
    either, the non-target log-sum-exp comes from ``_kernels.class_blocks`` and cos θ_y
    from ``cosines`` on the label's class row. ``classes_name`` is the caller's name for
    ``centers`` in error messages (``proxies``).
    """
    _checks.in_range(scale, "scale", low=0, low_open=True)
    scored = cosines is not None or non_target is not None
    # A class scorer defines the shape of a class's rows ([num_classes, ..., dim]).
    class_rank = max(jnp.ndim(centers), 2) if cosines is not None else 2
    x, w, labels = _checks.rows_and_classes(
        embeddings, centers, labels, "embeddings", classes_name, class_rank=class_rank
    )
    _checks.chunk_size(chunk_size)
    values = {
        name: _checks.per_row(jnp.asarray(v), x.shape[0], name)
        for name, v in (per_row or {}).items()
    }
    first_row, _ = shard_offset(x.shape[0], axis_name)
    ids = first_row + jnp.arange(x.shape[0])
    if same_devices(axis_name, class_axis_name):
        values, ids = jax.tree.map(lambda v: gather_batch(v, axis_name)[0], (values, ids))
    x, labels, where, local = partial_fc(x, labels, where, axis_name, class_axis_name)
    check_labels(labels, w, class_axis_name, where)
    counted, x = counted_rows(x, labels, w, where, class_axis_name)
    values = jax.tree.map(lambda v: jnp.where(counted, v, 0), values)
    unit_x = _numerics.l2_normalize(x)
    if scale is None:
        row_scale = _numerics.safe_norm(x)
    else:
        row_scale = jnp.broadcast_to(jnp.asarray(scale, x.dtype), x.shape[:1])
    target_rows, local_labels = label_rows(w, labels, class_axis_name)
    if cosines is None:
        cos_target = jnp.sum(unit_x * _numerics.l2_normalize(target_rows), axis=1)
    else:
        cos_target = jax.vmap(lambda u, c: cosines(u[None], c[None])[0, 0])(unit_x, target_rows)
    cos_target = jnp.clip(cos_target, -1.0, 1.0)
    target = target_logit(cos_target, row_scale, TargetRows(x, ids, values, counted))
    if scored:
        others = scored_non_target_logsumexp(
            unit_x,
            w,
            labels,
            ScoredRows(row_scale, cos_target, values),
            cosines or plain_cosines,
            non_target or scaled_cosines,
            chunk_size,
            class_axis_name,
        )
    else:
        others = _plain_non_target_logsumexp(
            x,
            unit_x,
            w,
            local_labels,
            row_scale,
            normalize_embeddings or scale is not None,
            chunk_size,
            class_axis_name,
        )
    loss = jnp.logaddexp(others, target) - target
    return reduce_loss(local(loss), reduction, where=local(counted), axis_name=axis_name)


def _plain_non_target_logsumexp(
    x: jax.Array,
    unit_x: jax.Array,
    w: jax.Array,
    local_labels: jax.Array,
    row_scale: jax.Array,
    scaled_rows: bool,
    chunk_size: int | None,
    class_axis_name: AxisName,
) -> jax.Array:
    """log Σ_{j ≠ y} exp(row_scale · cos θ_j) by the matmul kernel: from s·x̂, or from x
    itself when the scale is ‖x‖ (``scaled_rows`` False)."""
    if chunk_size is None:
        column_scale, class_rows = None, _numerics.l2_normalize(w)
    else:
        # cos θ_j = x̂ · w_j / ‖w_j‖: the kernel scales each class's column, so no
        # normalized copy of the centers (nor its gradient), as large as they are, is made.
        column_scale = 1 / jnp.maximum(_numerics.safe_norm(w), _numerics.NORM_EPS)
        class_rows = w
    rows = unit_x * row_scale[:, None] if scaled_rows else x
    return non_target_logsumexp(
        rows, class_rows, local_labels, None, column_scale, chunk_size, class_axis_name
    )
