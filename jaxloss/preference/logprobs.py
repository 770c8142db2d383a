"""Log-probabilities of given tokens, per token and per sequence: the inputs of the losses.

They read the target token's log-softmax as a gather and a log-sum-exp, without
materializing a ``[batch, time, vocab]`` copy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _numerics
from jaxloss._labels import valid_class_ids
from jaxloss._reduce import masked_inputs, safe_divide


def token_logprobs(
    logits: ArrayLike, tokens: ArrayLike, *, where: ArrayLike | None = None
) -> jax.Array:
    r"""Log-probability of each token under its logits, without a log-softmax copy.

    .. math::
      \log p_t = z_{t, y_t} - \log\sum_v e^{z_{t,v}}

    read as a gather and a log-sum-exp reduction, so no ``[batch, time, vocab]``
    log-softmax is stored (for the value or the backward pass); the logits may be bfloat16
    (the arithmetic is float32). The logits at position ``t`` must score token ``t``: for a
    causal language model pass ``logits[:, :-1]`` and ``tokens[:, 1:]``.

    Numerics: the token's logit minus a float32 log-sum-exp, so finite for all finite logits
    (no exponential overflows); a −inf logit at the token gives −inf. Masked tokens and ids
    outside ``[0, vocab)`` read 0.

    Args:
      logits: ``[..., time, vocab]`` float.
      tokens: ``[..., time]`` int token ids. Ids outside ``[0, vocab)`` (padding such as
        -100) count as masked; in checked mode they raise, as every label out of range
        (mask them with ``where`` there).
      where: optional boolean mask ``[..., time]`` of the tokens to keep.

    Returns:
      ``[..., time]`` float32 log-probabilities, 0 at masked tokens.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.log(jnp.array([[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]]))
      >>> jnp.exp(jaxloss.token_logprobs(logits, jnp.array([[0, 2]])))
      Array([[0.5, 0.8]], dtype=float32)
    """
    return _token_logprobs(*_logits_and_tokens(logits, tokens, where))


def _token_logprobs(logits: jax.Array, tokens: jax.Array, valid: jax.Array) -> jax.Array:
    """``token_logprobs`` of checked inputs, the logits of tokens not ``valid`` zeroed."""
    values = _numerics.log_softmax_at(logits.astype(jnp.float32), jnp.where(valid, tokens, 0))
    return jnp.where(valid, values, 0)


def _logits_and_tokens(
    logits: ArrayLike, tokens: ArrayLike, where: ArrayLike | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    logits = jnp.asarray(logits)
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"`logits` must be a floating-point array, got dtype {logits.dtype}.")
    tokens = _checks.integer_array(tokens, "tokens")
    if logits.ndim < 2 or tokens.shape != logits.shape[:-1]:
        raise ValueError(
            f"`tokens` must have the shape of `logits` {logits.shape} without the vocabulary "
            f"axis, got {tokens.shape}."
        )
    _checked.finite(logits, "logits", allow_inf=True)
    _checked.class_ids(tokens, logits.shape[-1], "tokens", where=_checks.mask(where, tokens.shape))
    # Padding rows may be all -inf (or anything): zeroed first, so no NaN reaches their
    # gradient.
    valid, (logits,) = masked_inputs(
        where, tokens.shape, logits, counted=valid_class_ids(tokens, logits.shape[-1])
    )
    return logits, tokens, valid


def sequence_logprobs(
    logits: ArrayLike,
    tokens: ArrayLike,
    *,
    where: ArrayLike | None = None,
    average: bool = False,
) -> jax.Array:
    r"""Per-sequence log-probability: the sum (or mean) of ``token_logprobs`` over time.

    The input of ``dpo`` and ``kto`` (summed) and of ``simpo``, ``orpo`` and TRL's IPO
    (``average=True``: divided by the number of valid tokens; 0 for a sequence without any).

    Numerics: a sum of ``token_logprobs``, so finite for finite logits and −inf if a kept
    token's logit is −inf; with ``average=True`` a sequence without valid tokens gives 0, not
    NaN.

    Args:
      logits: ``[..., time, vocab]`` float (see ``token_logprobs`` for the alignment).
      tokens: ``[..., time]`` int token ids; ids outside ``[0, vocab)`` count as masked.
      where: optional boolean mask ``[..., time]`` (e.g. the answer's tokens, not the
        prompt's).
      average: divide by the number of valid tokens.

    Returns:
      ``[...]`` float32, one value per sequence.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.log(jnp.array([[[0.5, 0.5], [0.25, 0.75]]]))
      >>> float(jnp.exp(jaxloss.sequence_logprobs(logits, jnp.array([[1, 0]]))[0]))  # 0.5·0.25
      0.125
    """
    logits, tokens, valid = _logits_and_tokens(logits, tokens, where)
    total = jnp.sum(_token_logprobs(logits, tokens, valid), axis=-1)
    if not average:
        return total
    return safe_divide(total, jnp.sum(valid, axis=-1).astype(total.dtype))
