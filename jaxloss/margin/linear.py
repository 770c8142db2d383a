"""``linear_cross_entropy``: a language-model head and its cross-entropy, without the logits.

The rows are scored against the vocabulary's rows like the margin heads' classes (so the
class-sharded and Partial FC paths are theirs, from ``classes``); with ``chunk_size`` the
normalizer comes from one of the two chunked kernels, chosen by ``_rows_per_block``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._kernels.chunked_logsumexp import accumulation_dtype, weighted_lse_sum
from jaxloss._reduce import linear_weights, reduce_loss
from jaxloss._sharding import AxisName, global_sum
from jaxloss.margin.classes import (
    check_labels,
    counted_rows,
    label_rows,
    non_target_logsumexp,
    partial_fc,
)


def linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: ArrayLike = 0.0,
    chunk_size: int | None = None,
    axis_name: AxisName = None,
    class_axis_name: AxisName = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""``cross_entropy(hidden @ weight.T + bias, labels)`` without the N × V logits.

    As ``torch.nn.functional.linear_cross_entropy``: the language-model head and its loss
    in one. With ``chunk_size`` the vocabulary is processed in blocks, so neither the
    forward nor the backward pass holds the ``[N, V]`` logits or their gradient (8 GiB for
    N = 8192, V = 131072 in float32). Label smoothing needs no extra pass:
    :math:`\sum_j z_{ij} = h_i \cdot \sum_j w_j + \sum_j b_j`.

    Numerics: finite whenever the logits ``h·w_j + b_j`` are (and, with label smoothing, their
    sum over the vocabulary): the normalizer is a max-shifted log-sum-exp (block by block with
    ``chunk_size``), accumulated in float32 (float64 for float64 inputs), so no exponential
    overflows; the loss is ``log-sum-exp − z_y``, whose rounding is an ulp of the largest
    logit (optax's form; :func:`jaxloss.cross_entropy` of integer labels subtracts the
    maximum first). A mean with no counted rows is 0. Rows that do not count (masked by ``where``,
    ignored, or with a label outside the vocabulary) are replaced by 0 before any
    arithmetic: NaN or inf there reaches neither the value nor any gradient (``weight``'s
    included), and their own gradient is exactly 0.

    Args:
      hidden: ``[N, dim]`` hidden states (any float dtype; matmuls accumulate in float32).
      weight: ``[vocab, dim]`` output projection; with ``class_axis_name`` this device's
        slice of the vocabulary.
      labels: ``[N]`` integer token ids (global with ``class_axis_name``).
      bias: optional ``[vocab]`` bias (sharded like ``weight``).
      ignore_index: labels equal to it are excluded; labels outside the vocabulary always
        are.
      label_smoothing: ε in [0, 1]; may be traced.
      chunk_size: bounds the logits held at once (static), or None for the plain
        computation. For ``"mean"`` and ``"sum"``, when ``16 * chunk_size**2`` logits
        cover at least 256 rows (or the whole batch) of the vocabulary, rows go in blocks
        of that many with the gradients computed in the forward pass (three matmuls, as
        the plain computation; e.g. 512 rows at V = 32768, chunk_size = 1024). Otherwise
        (also for ``"none"`` and with ``class_axis_name``) the vocabulary goes in blocks
        of ``chunk_size`` entries and the backward pass recomputes each block's logits
        (four matmuls).
      axis_name: mapped axis over which the rows are split (global mean and sum).
      class_axis_name: mapped axis over which ``weight`` is split by vocabulary; the same
        axis as ``axis_name`` gathers every device's rows (as the margin heads do).
      where: optional ``[N]`` boolean mask.
      reduction: ``"mean"`` (over counted rows), ``"sum"`` or ``"none"`` (``[N]``).

    Returns:
      A float32 scalar, or the per-row losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> h, w = jnp.ones((2, 3)), jnp.zeros((5, 3))
      >>> round(float(jaxloss.linear_cross_entropy(h, w, jnp.array([1, 4]), chunk_size=2)), 4)
      1.6094
    """
    h, w, labels = _checks.rows_and_classes(hidden, weight, labels, "hidden", "weight")
    _checks.chunk_size(chunk_size)
    h, labels, where, local = partial_fc(h, labels, where, axis_name, class_axis_name)
    check_labels(labels, w, class_axis_name, where, ignore_index)
    counted, h = counted_rows(h, labels, w, where, class_axis_name, ignore_index)
    b = None
    if bias is not None:
        b = _checks.vector_of_length(bias, w.shape[0], "bias", "one per vocabulary entry")
    target_rows, local_labels = label_rows(w, labels, class_axis_name)
    dtype = accumulation_dtype(h, w)
    target = jnp.einsum("nd,nd->n", h, target_rows, preferred_element_type=dtype)
    if b is not None:
        target = target + label_rows(b, labels, class_axis_name)[0]
    _checks.in_range(label_smoothing, "label_smoothing", low=0, high=1)
    smoothing = not _checks.is_static_zero(label_smoothing)
    eps = jnp.asarray(label_smoothing, dtype) if smoothing else 0.0
    if smoothing:
        weight_sum, bias_sum, vocab = (
            jnp.sum(w, axis=0),
            jnp.sum(b) if b is not None else 0.0,
            w.shape[0],
        )
        weight_sum = global_sum(weight_sum, class_axis_name)
        bias_sum = global_sum(bias_sum, class_axis_name)
        vocab = global_sum(vocab, class_axis_name)
        logit_sum = jnp.einsum("nd,d->n", h, weight_sum, preferred_element_type=dtype)
        mean_logit = (logit_sum + bias_sum) / vocab
    rows_per_block = _rows_per_block(h.shape[0], w.shape[0], chunk_size, reduction)
    if rows_per_block is not None and class_axis_name is None:
        # loss_i = L_i - (1 - ε) t_i - ε mean_j z_ij with L_i the full log-normalizer, whose
        # gradient the row-blocked kernel computes in its forward pass (three matmuls).
        coefficients = linear_weights(
            counted, h.shape[:1], reduction, axis_name=axis_name, dtype=dtype
        )
        normalizers = weighted_lse_sum(h, w, b, coefficients, rows_per_block)
        rest = -(1 - eps) * target - (eps * mean_logit if smoothing else 0.0)
        return reduce_loss(normalizers, "sum", axis_name=axis_name) + reduce_loss(
            rest, reduction, where=counted, axis_name=axis_name
        )
    others = non_target_logsumexp(h, w, local_labels, b, None, chunk_size, class_axis_name)
    log_normalizer = jnp.logaddexp(others, target)
    loss = log_normalizer - target
    if smoothing:
        loss = (1 - eps) * loss + eps * (log_normalizer - mean_logit)
    return reduce_loss(local(loss), reduction, where=local(counted), axis_name=axis_name)


# The row-blocked path holds up to this many logits per chunk_size², as [rows, vocab], and is
# taken when that is at least _MIN_ROWS rows (or the whole batch): fewer rows stream the
# weights too often to beat four matmuls in class blocks (measured on CPU at V = 32768: 512
# rows 0.85x the materialized time, 256 rows 0.92x, 128 rows 1.08x, 64 rows 1.28x).
_ROW_BUDGET = 16
_MIN_ROWS = 256


def _rows_per_block(
    num_rows: int, vocab: int, chunk_size: int | None, reduction: str
) -> int | None:
    """Rows per block for ``weighted_lse_sum``, or None for the class-blocked kernel."""
    if chunk_size is None or reduction not in ("mean", "sum"):
        return None
    rows = min(num_rows, _ROW_BUDGET * int(chunk_size) ** 2 // vocab)
    return rows if rows >= min(num_rows, _MIN_ROWS) and rows > 0 else None
