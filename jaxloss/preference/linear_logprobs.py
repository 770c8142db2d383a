"""Token log-probabilities and distillation straight from language-model heads, no logits.

``linear_token_logprobs``: the log-probability of a token is minus its cross-entropy, so
this is ``linear_cross_entropy(..., reduction="none")`` negated, over leading batch axes:
the same class-blocked kernel (``_kernels.chunked_logsumexp``) and vocabulary sharding.
``linear_distill``: ``generalized_jsd`` of a student and a teacher head, its log-normalizers
and divergence summed over vocabulary blocks by ``_kernels.class_blocks``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._kernels.chunked_logsumexp import accumulation_dtype
from jaxloss._kernels.class_blocks import class_logsumexp, class_sum
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName
from jaxloss.margin.linear import linear_cross_entropy
from jaxloss.preference.distillation import _generalized_jsd, _kl


def linear_token_logprobs(
    hidden: ArrayLike,
    weight: ArrayLike,
    tokens: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    chunk_size: int | None = None,
    class_axis_name: AxisName = None,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""``token_logprobs(hidden @ weight.T + bias, tokens)`` without the ``[..., vocab]`` logits.

    .. math::
      \log p_t = h_t \cdot w_{y_t} + b_{y_t} - \log\sum_v e^{h_t \cdot w_v + b_v}

    for hidden states :math:`h_t` (``hidden``), the head's rows :math:`w_v` (``weight``)
    and tokens :math:`y_t` (``tokens``): the per-token input of ``dpo``, ``ppo_clip`` or
    ``kl_penalty`` straight from the last hidden states. With ``chunk_size`` the
    vocabulary goes in blocks of that many entries: the forward pass keeps one float per
    token, the backward pass recomputes each block's logits (four matmuls where the
    materialized head takes three), so neither pass holds the logits or their gradient.
    Compiled for N = 8192 tokens, dim 1024 and a vocabulary of 131072 (float32, value and
    gradients of hidden and weight), XLA's temporary memory is 8.0 GiB for the
    materialized head with ``token_logprobs`` and 148 MiB (55× less) with
    ``chunk_size=1024``; at N = 2048, dim 512 and 32768 entries the value and gradients
    take 0.75× the materialized time on CPU.
    For a causal language model pass ``hidden[:, :-1]`` and ``tokens[:, 1:]``.

    Numerics: the normalizer is a max-shifted log-sum-exp (block by block with
    ``chunk_size``) accumulated in float32 (float64 for float64 inputs), so finite for all
    finite logits. Masked tokens and ids outside the vocabulary read 0; their hidden states
    are replaced by 0 before any arithmetic, so NaN there reaches no value or gradient
    (``weight``'s included).

    Args:
      hidden: ``[..., time, dim]`` float hidden states (half precision accumulates in
        float32).
      weight: ``[vocab, dim]`` output projection; with ``class_axis_name`` this device's
        slice of the vocabulary.
      tokens: ``[..., time]`` int token ids (global with ``class_axis_name``). Ids outside
        the vocabulary (padding such as -100) count as masked.
      bias: optional ``[vocab]`` bias (sharded like ``weight``).
      chunk_size: vocabulary entries per block (static), or None for the plain
        computation.
      class_axis_name: mapped axis over which ``weight`` is split by vocabulary (tensor
        parallel heads); ``hidden`` and ``tokens`` are then the same on every device.
      where: optional boolean mask ``[..., time]`` of the tokens to keep.

    Returns:
      ``[..., time]`` log-probabilities, float32 (float64 for float64 inputs), 0 at masked
      tokens.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> hidden = jnp.eye(2)[None]  # the logits of token t are the column t of weight
      >>> weight = jnp.log(jnp.array([[0.5, 0.1], [0.25, 0.1], [0.25, 0.8]]))
      >>> logprobs = jaxloss.linear_token_logprobs(
      ...     hidden, weight, jnp.array([[0, 2]]), chunk_size=2
      ... )
      >>> jnp.exp(logprobs)
      Array([[0.5, 0.8]], dtype=float32)

    References:
      Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models", 2024.
      https://arxiv.org/abs/2411.09009
    """
    hidden = _checks.float_array(hidden, "hidden")
    tokens = _checks.integer_array(tokens, "tokens")
    if hidden.ndim < 2 or tokens.shape != hidden.shape[:-1]:
        raise ValueError(
            "`hidden` must be [..., time, dim] and `tokens` [..., time] with the same leading "
            f"axes, got {hidden.shape} and {tokens.shape}."
        )
    mask = _checks.mask(where, tokens.shape)
    losses = linear_cross_entropy(
        hidden.reshape(-1, hidden.shape[-1]),
        weight,
        tokens.reshape(-1),
        bias=bias,
        chunk_size=chunk_size,
        class_axis_name=class_axis_name,
        where=None if mask is None else mask.reshape(-1),
        reduction="none",
    )
    # 0 - loss, not -loss: masked tokens read +0, as token_logprobs's.
    return jnp.subtract(0, losses).reshape(tokens.shape)


def linear_distill(
    student_hidden: ArrayLike,
    student_weight: ArrayLike,
    teacher_hidden: ArrayLike,
    teacher_weight: ArrayLike,
    *,
    beta: ArrayLike = 0.5,
    temperature: ArrayLike = 1.0,
    student_bias: ArrayLike | None = None,
    teacher_bias: ArrayLike | None = None,
    chunk_size: int | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""``generalized_jsd`` of two language-model heads, without either's logits.

    .. math::
      \ell_t = \beta\, \mathrm{KL}(p_t \,\|\, m_t) + (1 - \beta)\, \mathrm{KL}(q_t \,\|\, m_t),
      \qquad m_t = \beta\, p_t + (1 - \beta)\, q_t,

    with student :math:`q_t = \mathrm{softmax}((W_s h^s_t + b_s) / T)` and teacher
    :math:`p_t = \mathrm{softmax}((W_t h^t_t + b_t) / T)` over the vocabulary; ``beta=0``
    is the forward :math:`\mathrm{KL}(p \,\|\, q)` and ``beta=1`` the reverse
    :math:`\mathrm{KL}(q \,\|\, p)`, as TRL 1.16's GKD ``generalized_jsd_loss`` and
    ``generalized_jsd`` (which this equals on the materialized logits). With ``chunk_size``
    the vocabulary goes in blocks (``_kernels.class_blocks``): one pass per head for its
    log-normalizer, one for the divergence, and the backward pass recomputes each block, so
    no ``[tokens, vocab]`` array is held. Compiled for 8192 tokens, dims 1024 and a
    vocabulary of 131072 (float32, the student's gradients), XLA's temporary memory is
    32 GiB materialized (``generalized_jsd``) and 672 MiB with ``chunk_size=1024``; the
    recomputation costs 1.5× the materialized time on CPU (2048 tokens, dims 512, 32768
    entries).

    Numerics: log-normalizers are max-shifted log-sum-exps accumulated in float32 (float64
    for float64 inputs), the divergence is formed in log space; finite for finite logits.
    Masked tokens' hidden states are replaced by 0 before any arithmetic: NaN there reaches
    no value or gradient.

    Args:
      student_hidden: ``[..., tokens, student_dim]`` float hidden states of the student.
      student_weight: ``[vocab, student_dim]`` the student's output projection.
      teacher_hidden: ``[..., tokens, teacher_dim]`` the teacher's, same leading axes.
      teacher_weight: ``[vocab, teacher_dim]`` the teacher's output projection (its
        gradients are computed only if asked for: pass the teacher under
        ``jax.lax.stop_gradient`` otherwise).
      beta: :math:`\beta \in [0, 1]`, the teacher's weight in the mixture.
      temperature: :math:`T > 0`, dividing both heads' logits.
      student_bias: optional ``[vocab]`` bias of the student head.
      teacher_bias: optional ``[vocab]`` bias of the teacher head.
      chunk_size: vocabulary entries per block (static), or None for the plain
        computation.
      where: optional boolean mask ``[..., tokens]`` of the tokens that count.
      reduction: ``"mean"`` over the unmasked tokens, ``"sum"`` or ``"none"``
        (``[..., tokens]``).
      axis_name: mapped axis of the batch (the mean over the tokens of every device).

    Returns:
      A float32 scalar, or the per-token divergences for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> hidden = jnp.ones((1, 1))  # the logits are the weight's column
      >>> student = jnp.log(jnp.array([[0.5], [0.5]]))
      >>> teacher = jnp.log(jnp.array([[0.9], [0.1]]))
      >>> loss = jaxloss.linear_distill(hidden, student, hidden, teacher, chunk_size=1)
      >>> round(float(loss), 4)  # m = (0.7, 0.3), as generalized_jsd's example
      0.1017

    References:
      Agarwal, Vieillard, Zhou, Stanczyk, Ramos, Geist and Bachem, "On-Policy Distillation
      of Language Models: Learning from Self-Generated Mistakes", ICLR 2024,
      arXiv:2306.13649.
    """
    _checks.in_range(beta, "beta", low=0, high=1)
    _checks.in_range(temperature, "temperature", low=0, low_open=True)
    _checks.chunk_size(chunk_size)
    heads = []
    for h, w, b, name in (
        (student_hidden, student_weight, student_bias, "student"),
        (teacher_hidden, teacher_weight, teacher_bias, "teacher"),
    ):
        h = _checks.float_array(h, f"{name}_hidden")
        w = _checks.float_array(w, f"{name}_weight")
        if h.ndim < 1 or w.ndim != 2 or h.shape[-1] != w.shape[1]:
            raise ValueError(
                f"`{name}_hidden` must be [..., dim] and `{name}_weight` [vocab, dim] with "
                f"the same dim, got {h.shape} and {w.shape}."
            )
        if b is not None:
            b = _checks.vector_of_length(b, w.shape[0], f"{name}_bias", "one per vocabulary entry")
        heads.append((h, w, b))
    (h_s, w_s, b_s), (h_t, w_t, b_t) = heads
    if h_s.shape[:-1] != h_t.shape[:-1] or w_s.shape[0] != w_t.shape[0]:
        raise ValueError(
            "`teacher_hidden` and `teacher_weight` must score the tokens of `student_hidden` "
            f"over the vocabulary of `student_weight`, got {h_t.shape} and {w_t.shape} for "
            f"{h_s.shape} and {w_s.shape}."
        )
    shape = h_s.shape[:-1]
    mask, (h_s, h_t) = masked_inputs(where, shape, h_s, h_t)
    h_s, h_t = h_s.reshape(-1, h_s.shape[-1]), h_t.reshape(-1, h_t.shape[-1])
    dtype = accumulation_dtype(h_s, w_s, h_t, w_t)
    inverse_t = 1 / jnp.asarray(temperature, dtype)
    no_label = jnp.full(h_s.shape[:1], -1, jnp.int32)

    def log_normalizer(h: jax.Array, w: jax.Array, b: jax.Array | None) -> jax.Array:
        return class_logsumexp(
            lambda r, c, _: _head_logits(r[0], c[0], c[1], r[1]),
            (h, inverse_t),
            (w, b),
            no_label,
            chunk_size=chunk_size,
        )

    # A Python 0 or 1 is one KL (as generalized_jsd); a traced beta takes both branches.
    endpoint = beta if isinstance(beta, (int, float)) and beta in (0, 1) else None
    # Everything traced goes in the rows: the kernel re-runs `terms` in its backward pass.
    lse_s, lse_t = log_normalizer(h_s, w_s, b_s), log_normalizer(h_t, w_t, b_t)
    rows = (h_s, h_t, lse_s, lse_t, inverse_t, jnp.asarray(beta, dtype))

    def terms(r: tuple, c: tuple, _: jax.Array, new: jax.Array) -> jax.Array:
        h_s, h_t, lse_s, lse_t, inverse_t, beta = r
        log_q = _head_logits(h_s, c[0], c[1], inverse_t) - lse_s[:, None]
        log_p = _head_logits(h_t, c[2], c[3], inverse_t) - lse_t[:, None]
        # Entries an earlier block counted: probability 0 under both, so they add nothing.
        log_q, log_p = (jnp.where(new[None, :], a, -jnp.inf) for a in (log_q, log_p))
        if endpoint is not None:
            return _kl(log_p, log_q) if endpoint == 0 else _kl(log_q, log_p)
        return _generalized_jsd(log_q, log_p, beta)

    loss = class_sum(terms, rows, (w_s, b_s, w_t, b_t), chunk_size=chunk_size)
    return reduce_loss(loss.reshape(shape), reduction, where=mask, axis_name=axis_name)


def _head_logits(
    h: jax.Array, w: jax.Array, b: jax.Array | None, inverse_t: jax.Array
) -> jax.Array:
    """``(h @ w.T + b) / T``, ``[N, K]``, accumulated in at least float32."""
    z = jnp.einsum("nd,kd->nk", h, w, preferred_element_type=accumulation_dtype(h, w))
    if b is not None:
        z = z + b.astype(z.dtype)[None, :]
    return z * inverse_t.astype(z.dtype)
