"""Decoding a transducer (RNN-T): greedy and beam search, the model given as two functions.

A decoder sees three pieces of the model, as torchaudio's ``RNNTBeamSearch`` and NeMo's
decoders do: the encoder's output ``[batch, time, ...]`` (computed once, beforehand),
``predict`` (the prediction network advanced by one token) and ``join`` (the joiner: frames
against predictor outputs, to logits). Both decoders are a ``lax.scan`` over the frames
with fixed shapes: they jit, and every call of ``predict`` and ``join`` is batched over the
sequences (and the beam).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss.sequence.transducer import _blank_index

Predict = Callable[[jax.Array, Any], tuple[Any, Any]]
Join = Callable[[jax.Array, Any], jax.Array]


def _shapes(tree: Any) -> list[tuple[int, ...]]:
    return [tuple(leaf.shape) for leaf in jax.tree.leaves(tree)]


def _structure(tree: Any) -> Any:
    return jax.tree.structure(tree)


class _Model(NamedTuple):
    """Checked inputs: frames time first (the scan's axis), and the predictor after the
    start-of-sequence token (the blank)."""

    frames: jax.Array
    logit_lengths: jax.Array
    blank: int
    dtype: Any  # of the log-probabilities: the logits' dtype, at least float32
    output: Any
    state: Any


def _prepared(
    encoder_out: ArrayLike,
    predict: Predict,
    join: Join,
    predictor_state: Any,
    logit_lengths: ArrayLike | None,
    blank: int,
) -> _Model:
    encoder_out = jnp.asarray(encoder_out)
    if not jnp.issubdtype(encoder_out.dtype, jnp.floating):
        raise TypeError(f"`encoder_out` must be a floating-point array, got {encoder_out.dtype}.")
    if encoder_out.ndim < 2:
        raise ValueError(
            f"`encoder_out` must have shape [batch, time, ...], got {encoder_out.shape}."
        )
    batch, num_frames = encoder_out.shape[:2]
    logit_lengths = _checks.lengths(logit_lengths, num_frames, batch, "logit_lengths")
    state = jax.tree.map(jnp.asarray, predictor_state)
    for shape in _shapes(state):
        if shape[:1] != (batch,):
            raise ValueError(
                f"Every leaf of `predictor_state` must have a leading axis of size batch={batch}, "
                f"got shape {shape}."
            )
    # The model's contract, checked on shapes only (nothing runs): predict keeps the state's
    # shapes and returns one output row per token, join returns [N, num_classes].
    returned = jax.eval_shape(predict, jax.ShapeDtypeStruct((batch,), jnp.int32), state)
    if not isinstance(returned, (tuple, list)) or len(returned) != 2:
        raise ValueError("`predict(tokens, state)` must return a pair (output, new_state).")
    output, new_state = returned
    if _structure(new_state) != _structure(state) or _shapes(new_state) != _shapes(state):
        raise ValueError(
            "`predict` must return a new state of the structure and shapes of `predictor_state` "
            f"({_shapes(state)}), got {_shapes(new_state)}."
        )
    if any(shape[:1] != (batch,) for shape in _shapes(output)):
        raise ValueError(
            f"`predict`'s output must have one row per token ({batch}), got {_shapes(output)}."
        )
    frame = jax.ShapeDtypeStruct((batch, *encoder_out.shape[2:]), encoder_out.dtype)
    logits = jax.eval_shape(join, frame, output)
    if (
        not isinstance(logits, jax.ShapeDtypeStruct)
        or logits.shape[:1] != (batch,)
        or logits.ndim != 2
    ):
        described = logits.shape if isinstance(logits, jax.ShapeDtypeStruct) else type(logits)
        raise ValueError(
            f"`join` must return logits [N, num_classes] for N = {batch} frames, got {described}."
        )
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"`join` must return floating-point logits, got {logits.dtype}.")
    blank = _blank_index(blank, logits.shape[1])
    output, state = predict(jnp.full((batch,), blank, jnp.int32), state)
    dtype = jnp.promote_types(logits.dtype, jnp.float32)
    return _Model(jnp.moveaxis(encoder_out, 1, 0), logit_lengths, blank, dtype, output, state)


def _log_probs(join: Join, frames: jax.Array, output: Any) -> jax.Array:
    logits = join(frames, output)
    return jax.nn.log_softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), axis=-1)


def _where(mask: jax.Array, new: Any, old: Any) -> Any:
    """``new`` where ``mask`` (over the leading axes of every leaf), else ``old``."""

    def pick(n: jax.Array, o: jax.Array) -> jax.Array:
        return jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - mask.ndim)), n, o)

    return jax.tree.map(pick, new, old)


def rnnt_greedy_decode(
    encoder_out: ArrayLike,
    predict: Predict,
    join: Join,
    predictor_state: Any,
    *,
    logit_lengths: ArrayLike | None = None,
    blank: int = 0,
    max_symbols_per_frame: int = 4,
) -> tuple[jax.Array, jax.Array]:
    r"""Greedy transducer decoding: at each frame, emit the most likely token until a blank.

    With :math:`g_u` the predictor's output after the tokens emitted so far (the first input
    is the blank, as start-of-sequence), each step takes

    .. math::
      k = \operatorname{argmax}_v \log\mathrm{softmax}(\text{join}(e_t, g_u))_v

    and emits :math:`k` (advancing the predictor by it) unless it is the blank, which moves
    to frame :math:`t + 1`; so does the ``max_symbols_per_frame``-th emission at a frame.
    Ties go to the lowest class id. This is NeMo's ``GreedyRNNTInfer`` (its
    ``max_symbols_per_step``), and :func:`jaxloss.rnnt_beam_search` with ``beam_width=1``
    gives the same tokens.

    Fixed shapes: a ``lax.scan`` over the frames, with a ``while_loop`` of at most
    ``max_symbols_per_frame`` steps per frame that stops once every sequence has emitted its
    blank; ``predict`` and ``join`` see ``N = batch`` rows per call. Frames past
    ``logit_lengths`` are replaced by zeros before ``join`` and change nothing. To jit, close
    over the functions or mark them static (``static_argnums=(1, 2)``).

    Args:
      encoder_out: ``[batch, time, ...]`` the encoder's output frames (any dtype ``join``
        takes; floating point).
      predict: ``predict(tokens, state) -> (output, new_state)``: advances the prediction
        network by one token, ``tokens`` ``[N]`` int32; ``state`` and ``output`` are pytrees
        whose leaves have the leading axis ``N``.
      join: ``join(frames, output) -> logits``: ``frames`` ``[N, ...]`` (rows of
        ``encoder_out``) and a predictor ``output`` to ``[N, num_classes]`` logits.
      predictor_state: the initial state of the ``batch`` sequences (leading axis ``batch``).
      logit_lengths: ``[batch]`` frames of each sequence to decode (default all ``time``).
      blank: the blank class id (static); negative counts from the end.
      max_symbols_per_frame: the most tokens emitted at one frame (static, >= 1).

    Returns:
      ``(tokens, lengths)``: ``tokens`` ``[batch, time * max_symbols_per_frame]`` int32, the
      decoded tokens padded with -1; ``lengths`` ``[batch]`` int32, how many are valid.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxloss
      >>> # Frames over {blank, "a", "b"}; the predictor's output is the last token (one-hot),
      >>> # and the joiner makes repeating it unlikely.
      >>> frames = jnp.log(jnp.array([[[0.1, 0.8, 0.1], [0.2, 0.1, 0.7]]]))
      >>> predict = lambda tokens, state: (jax.nn.one_hot(tokens, 3), state)
      >>> join = lambda frames, last: frames - 5.0 * last
      >>> tokens, lengths = jaxloss.rnnt_greedy_decode(frames, predict, join, jnp.zeros((1,)))
      >>> tokens[0, : int(lengths[0])].tolist()
      [1, 2]

    References:
      Graves, "Sequence Transduction with Recurrent Neural Networks", ICML 2012
      Representation Learning Workshop. https://arxiv.org/abs/1211.3711
    """
    max_symbols = _checks.static_int(max_symbols_per_frame, "max_symbols_per_frame")
    model = _prepared(encoder_out, predict, join, predictor_state, logit_lengths, blank)
    num_frames, batch = model.frames.shape[:2]
    capacity = num_frames * max_symbols
    rows = jnp.arange(batch)

    def frame(carry: tuple, inputs: tuple[jax.Array, jax.Array]) -> tuple[tuple, None]:
        frames, t = inputs
        active = t < model.logit_lengths
        frames = _where(active, frames, jnp.zeros_like(frames))

        def emitting(loop: tuple) -> jax.Array:
            return (loop[0] < max_symbols) & jnp.any(loop[1])

        def emit(loop: tuple) -> tuple:
            symbols, active, predictor, tokens, lengths = loop
            best = jnp.argmax(_log_probs(join, frames, predictor[0]), axis=-1).astype(jnp.int32)
            emitted = active & (best != model.blank)
            slot = jnp.where(emitted, lengths, capacity)
            tokens = tokens.at[rows, slot].set(best, mode="drop")
            advanced = predict(jnp.where(emitted, best, model.blank), predictor[1])
            predictor = _where(emitted, advanced, predictor)
            return symbols + 1, emitted, predictor, tokens, lengths + emitted

        _, _, predictor, tokens, lengths = jax.lax.while_loop(emitting, emit, (0, active, *carry))
        return (predictor, tokens, lengths), None

    carry = (
        (model.output, model.state),
        jnp.full((batch, capacity), -1, jnp.int32),
        jnp.zeros((batch,), jnp.int32),
    )
    (_, tokens, lengths), _ = jax.lax.scan(frame, carry, (model.frames, jnp.arange(num_frames)))
    return tokens, lengths
