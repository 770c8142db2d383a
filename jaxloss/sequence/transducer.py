"""The RNN-Transducer loss: from the joiner's logits (``rnnt``) or from its inputs in blocks
of frames (``linear_rnnt``).

Both check and mask their inputs here and call the kernels ``_kernels.rnnt`` (the lattice's
forward–backward over anti-diagonals, with the gradient in closed form) and
``_kernels.rnnt_joint`` (the joiner and the log-softmax recomputed per block of frames).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks
from jaxloss._kernels import rnnt as rnnt_kernel
from jaxloss._kernels import rnnt_joint
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName


def _blank_index(blank: int, num_classes: int) -> int:
    """``blank`` as an index in ``[0, V)``; negative counts from the end (torchaudio's -1)."""
    blank = _checks.static_index(blank, "blank")
    if not -num_classes <= blank < num_classes:
        raise ValueError(
            f"`blank`={blank} must be a class index in [{-num_classes}, {num_classes})."
        )
    return blank % num_classes


def _floating(x: ArrayLike, name: str) -> jax.Array:
    """A floating array, left in its dtype: the kernels cast inside their fused passes, so a
    half-precision input is never copied whole to float32."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"`{name}` must be a floating-point array, got dtype {x.dtype}.")
    return x


def _no_frames(batch: int) -> jax.Array:
    """The losses of sequences with no frames at all (``time`` = 0): +inf, as the final blank
    has no frame to be emitted in (the inputs get a zero gradient)."""
    return jnp.full((batch,), jnp.inf, jnp.float32)


def _sequence_inputs(
    batch: int,
    num_frames: int,
    num_classes: int,
    labels: ArrayLike,
    logit_lengths: ArrayLike | None,
    label_lengths: ArrayLike | None,
    blank: int,
    where: ArrayLike | None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array | None]:
    """Checked labels ``[B, U]`` (int32), both lengths, the kept sequences ``[B]`` and the
    mask to reduce with."""
    labels = _checks.label_sequences(labels, batch)
    max_labels = labels.shape[1]
    logit_lengths = _checks.lengths(logit_lengths, num_frames, batch, "logit_lengths")
    label_lengths = _checks.lengths(label_lengths, max_labels, batch, "label_lengths")
    mask, _ = masked_inputs(where, (batch,))
    kept = jnp.ones((batch,), bool) if mask is None else mask
    _checked.sequence_labels(labels, label_lengths, num_classes, blank, kept)
    # An int64 id outside int32 must not wrap into the classes: it becomes -1 (never emitted).
    labels = jnp.where((labels >= 0) & (labels < num_classes), labels, -1).astype(jnp.int32)
    return labels, logit_lengths, label_lengths, kept, mask


def rnnt(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    logit_lengths: ArrayLike | None = None,
    label_lengths: ArrayLike | None = None,
    blank: int = 0,
    clamp: ArrayLike = -1.0,
    fused_log_softmax: bool = True,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""RNN-Transducer loss, as torchaudio's ``rnnt_loss``.

    The joiner scores every pair of a frame :math:`t` and a count :math:`u` of labels
    already emitted; with :math:`p = \mathrm{softmax}(\text{logits})` over the classes,
    :math:`\varnothing` the blank and :math:`y_u` the next label,

    .. math::
      \alpha(t, u) = \mathrm{lae}\big(\alpha(t-1, u) + \log p_{t-1,u,\varnothing},\;
        \alpha(t, u-1) + \log p_{t,u-1,y_u}\big), \quad \alpha(0, 0) = 0, \qquad
      \ell_b = -\big(\alpha(T_b - 1, U_b) + \log p_{T_b-1,U_b,\varnothing}\big)

    (:math:`\mathrm{lae}` is ``logaddexp``): :math:`-\log` of the total probability of
    every alignment, the interleavings of :math:`T_b` blanks and the :math:`U_b` labels in
    which a blank moves to the next frame and a label to the next label, ending with a blank
    in the last frame. ``"mean"`` is torchaudio's: the plain mean over the sequences (not
    divided by their lengths).

    The kernel runs the alpha and beta recursions over the lattice's anti-diagonals
    (T + U vectorized steps) and writes the gradient with respect to the logits in closed
    form from them, in one pass: no autodiff tape and no second ``[B, T, U+1, V]`` array
    besides the gradient (``benchmarks/``, value and gradient on a 2-core CPU: 2-3x faster
    than a ``lax.scan`` over the frames differentiated by JAX, with 39-315x less temporary
    memory). Reverse-mode only (``grad``, ``vjp``). For a large
    vocabulary, :func:`jaxloss.linear_rnnt` computes the same loss from the joiner's inputs
    without the full logits.

    Differences from torchaudio: ``blank`` defaults to 0 (torchaudio's default -1, the last
    class, is accepted); ``clamp`` clips each element of a sequence's gradient to
    ``[-clamp, clamp]`` as documented and as torchaudio's CPU kernel does (its CUDA kernel
    keeps only the lower bound: it clips the unclamped value twice); a sequence with no
    frames has loss +inf and a zero gradient; lengths are optional. Frames past
    ``logit_lengths``, label positions past ``label_lengths`` and sequences masked by
    ``where`` are never read: NaN or inf padding there changes no value and has gradient
    exactly 0.

    Args:
      logits: ``[batch, time, max_label_length + 1, num_classes]`` joiner outputs; half
        precision is computed in float32 (and its gradient returned in the input dtype).
      labels: ``[batch, max_label_length]`` integer targets in ``[0, num_classes)``, never
        ``blank``, padded past ``label_lengths`` with anything.
      logit_lengths: ``[batch]`` frames of each sequence's lattice (at least 1 for a
        finite loss); default all ``time`` frames.
      label_lengths: ``[batch]`` labels of each sequence (its lattice has
        ``label_lengths + 1`` positions); default ``max_label_length``.
      blank: the blank class id (static); negative counts from the end.
      clamp: if > 0, each element of a sequence's gradient with respect to the logits is
        clipped to ``[-clamp, clamp]`` (the value is unchanged).
      fused_log_softmax: apply the log-softmax over the classes (static); False takes the
        logits as log-probabilities as given (unnormalized scores may then give a negative
        loss, as in torchaudio).
      where: optional ``[batch]`` boolean mask of the sequences that count.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the ``[batch]`` losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> # One frame, one label "a", uniform over {blank, "a"}: emit "a", then the blank.
      >>> logits = jnp.zeros((1, 1, 2, 2))
      >>> round(float(jaxloss.rnnt(logits, jnp.array([[1]]))), 4)  # -log(1/2 * 1/2)
      1.3863

    References:
      Graves, "Sequence Transduction with Recurrent Neural Networks", ICML 2012
      Representation Learning Workshop. https://arxiv.org/abs/1211.3711
    """
    logits = _floating(logits, "logits")
    if logits.ndim != 4:
        raise ValueError(
            "`logits` must have shape [batch, time, max_label_length + 1, num_classes], "
            f"got {logits.shape}."
        )
    batch, num_frames, positions, num_classes = logits.shape
    blank = _blank_index(blank, num_classes)
    labels, logit_lengths, label_lengths, kept, mask = _sequence_inputs(
        batch, num_frames, num_classes, labels, logit_lengths, label_lengths, blank, where
    )
    if positions != labels.shape[1] + 1:
        raise ValueError(
            f"`logits` must have max_label_length + 1 = {labels.shape[1] + 1} label positions "
            f"(axis 2) for `labels` of shape {labels.shape}, got {positions}."
        )
    _checked.finite(
        logits,
        "logits",
        allow_inf=True,
        where=rnnt_kernel.node_mask(logit_lengths, label_lengths, kept, (num_frames, positions)),
    )
    clamp = jnp.asarray(clamp, jnp.float32)
    if num_frames == 0:
        loss = _no_frames(batch)
    else:
        loss = rnnt_kernel.negative_log_likelihood(
            logits, labels, logit_lengths, label_lengths, kept, clamp, blank, fused_log_softmax
        )
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def linear_rnnt(
    encoder: ArrayLike,
    predictor: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
    logit_lengths: ArrayLike | None = None,
    label_lengths: ArrayLike | None = None,
    blank: int = 0,
    time_chunk: int | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r""":func:`rnnt` of the joiner ``activation(encoder + predictor) @ weight + bias``, in
    blocks of frames, so the ``[B, T, U+1, V]`` logits never exist at once.

    .. math::
      \text{logits}_{b t u} = \sigma(e_{b t} + g_{b u})\, W + c

    with :math:`e` the ``encoder`` frames, :math:`g` the ``predictor`` outputs (both
    already projected to the joint size ``H``), :math:`\sigma` the ``activation``, :math:`W`
    the ``weight`` and :math:`c` the ``bias``; the loss is :func:`rnnt`'s of these logits
    (fused log-softmax). The forward pass computes the logits of ``time_chunk`` frames at a
    time and keeps only the blank's and the labels' log-probabilities and the
    log-normalizers (``[B, T, U+1]``); the backward pass recomputes each block's logits,
    forms its gradient in closed form from the lattice's posteriors, and sends it through
    the output projection and the activation at once (the blockwise joint, or *function
    merging*, of the large-vocabulary transducer literature). Temporary memory is a block's
    ``[B, time_chunk, U+1, max(V, H)]`` arrays instead of the whole lattice's; the
    gradients are exact. Reverse-mode only.

    Entries past ``logit_lengths`` (encoder frames), past ``label_lengths`` (predictor
    positions ``u > U_b``) and sequences masked by ``where`` are replaced by 0 first: NaN or
    inf padding there changes nothing, and their gradient is exactly 0.

    Args:
      encoder: ``[batch, time, joint_size]`` encoder outputs (projected to the joint size).
      predictor: ``[batch, max_label_length + 1, joint_size]`` prediction-network outputs,
        position ``u`` after the first ``u`` labels (position 0 after the start symbol).
      weight: ``[joint_size, num_classes]`` output projection.
      labels: ``[batch, max_label_length]`` integer targets, never ``blank``.
      bias: optional ``[num_classes]`` output bias.
      activation: elementwise function of the summed inputs (static); default ``tanh``.
      logit_lengths: ``[batch]`` valid encoder frames (at least 1 for a finite loss);
        default all ``time`` frames.
      label_lengths: ``[batch]`` valid labels; the predictor positions past
        ``label_lengths + 1`` are padding. Default ``max_label_length``.
      blank: the blank class id (static); negative counts from the end.
      time_chunk: frames per block (static); default: blocks of about 2^21 logits.
      where: optional ``[batch]`` boolean mask of the sequences that count.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the ``[batch]`` losses for ``reduction="none"``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxloss
      >>> k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
      >>> encoder = jax.random.normal(k1, (2, 6, 8))
      >>> predictor = jax.random.normal(k2, (2, 4, 8))
      >>> weight = jax.random.normal(k3, (8, 5))
      >>> labels = jnp.array([[1, 2, 3], [4, 4, 1]])
      >>> fused = jaxloss.linear_rnnt(encoder, predictor, weight, labels, time_chunk=2)
      >>> logits = jnp.tanh(encoder[:, :, None] + predictor[:, None]) @ weight
      >>> bool(jnp.allclose(fused, jaxloss.rnnt(logits, labels), rtol=1e-5))
      True

    References:
      Graves, "Sequence Transduction with Recurrent Neural Networks", 2012.
      https://arxiv.org/abs/1211.3711

      Li, Zhao, Parthasarathy, Gong et al., "Improving RNN Transducer Modeling for
      End-to-End Speech Recognition" (function merging), ASRU 2019.
      https://arxiv.org/abs/1909.12415
    """
    # The joiner's inputs are small next to its logits: half precision is cast up front.
    encoder, predictor = _floating(encoder, "encoder"), _floating(predictor, "predictor")
    encoder = encoder.astype(jnp.promote_types(encoder.dtype, jnp.float32))
    predictor = predictor.astype(jnp.promote_types(predictor.dtype, jnp.float32))
    weight = _checks.float_array(weight, "weight")
    if encoder.ndim != 3:
        raise ValueError(
            f"`encoder` must have shape [batch, time, joint_size], got {encoder.shape}."
        )
    batch, num_frames, joint_size = encoder.shape
    if weight.ndim != 2 or weight.shape[0] != joint_size:
        raise ValueError(
            f"`weight` must have shape [joint_size={joint_size}, num_classes], got {weight.shape}."
        )
    num_classes = weight.shape[1]
    bias = (
        jnp.zeros((num_classes,), weight.dtype)
        if bias is None
        else _checks.float_array(bias, "bias")
    )
    if bias.shape != (num_classes,):
        raise ValueError(f"`bias` must have shape ({num_classes},), got {bias.shape}.")
    blank = _blank_index(blank, num_classes)
    labels, logit_lengths, label_lengths, kept, mask = _sequence_inputs(
        batch, num_frames, num_classes, labels, logit_lengths, label_lengths, blank, where
    )
    positions = labels.shape[1] + 1
    if predictor.shape != (batch, positions, joint_size):
        raise ValueError(
            f"`predictor` must have shape [batch={batch}, max_label_length + 1={positions}, "
            f"joint_size={joint_size}], got {predictor.shape}."
        )
    if time_chunk is None:
        time_chunk = max(1, min(num_frames, 2**21 // max(1, batch * positions * num_classes)))
    time_chunk = _checks.static_int(time_chunk, "time_chunk")  # NumPy's ints too
    frames = (jnp.arange(num_frames)[None, :] < logit_lengths[:, None]) & kept[:, None]
    in_labels = (jnp.arange(positions)[None, :] <= label_lengths[:, None]) & kept[:, None]
    _checked.finite(encoder, "encoder", where=frames)
    _checked.finite(predictor, "predictor", where=in_labels)
    _, (encoder,) = masked_inputs(None, frames.shape, encoder, counted=frames)
    _, (predictor,) = masked_inputs(None, in_labels.shape, predictor, counted=in_labels)
    if num_frames == 0:
        return reduce_loss(_no_frames(batch), reduction, where=mask, axis_name=axis_name)
    loss = rnnt_joint.negative_log_likelihood(
        encoder,
        predictor,
        weight,
        bias,
        labels,
        logit_lengths,
        label_lengths,
        kept,
        blank,
        activation,
        min(time_chunk, num_frames),
    )
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)
