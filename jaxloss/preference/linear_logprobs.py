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

from jaxloss import _checked, _checks
from jaxloss._kernels import distill_blocks
from jaxloss._kernels.chunked_logsumexp import accumulation_dtype
from jaxloss._reduce import linear_weights, masked_inputs, reduce_loss
from jaxloss._sharding import AxisName, global_sum
from jaxloss.margin.classes import global_num_classes
from jaxloss.margin.linear import linear_cross_entropy
from jaxloss.preference.distillation import static_endpoint


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
    weight = _checks.float_array(weight, "weight")
    tokens = _checks.integer_array(tokens, "tokens")
    if hidden.ndim < 2 or tokens.shape != hidden.shape[:-1]:
        raise ValueError(
            "`hidden` must be [..., time, dim] and `tokens` [..., time] with the same leading "
            f"axes, got {hidden.shape} and {tokens.shape}."
        )
    # Checked here with the caller's names and shapes: linear_cross_entropy sees the rows
    # flattened, its labels named `labels` (its own checks then pass).
    if weight.ndim != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(
            "`hidden` must be [..., time, dim] and `weight` [vocab, dim] with the same dim, "
            f"got {hidden.shape} and {weight.shape}."
        )
    mask = _checks.mask(where, tokens.shape)
    _checked.class_ids(tokens, global_num_classes(weight, class_axis_name), "tokens", where=mask)
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
    class_axis_name: AxisName = None,
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
    ``generalized_jsd`` (which this equals on the materialized logits).

    The heads are scored in blocks of ``chunk_size`` tokens (``_kernels.distill_blocks``):
    a block's ``[chunk_size, vocab]`` logits of both heads, the divergence and its gradient
    with respect to them in closed form, then the gradients of the hidden states, weights
    and biases, so no ``[tokens, vocab]`` array and no autodiff tape is held. For
    ``"mean"`` and ``"sum"`` the gradients are formed in the same pass as the value: the
    matmuls are the materialized head's (two per head for the logits, two per head whose
    gradients are asked for; a teacher under ``stop_gradient`` costs one), and the
    elementwise work is less. Compiled for 8192 tokens, dims 1024 and a vocabulary of
    131072 (float32, value and the student's gradients), XLA's temporary memory with
    ``chunk_size=128`` is 517 MiB (mostly the weight gradient's accumulator), against
    32 GiB for ``generalized_jsd`` of the materialized logits (63× less; 20 GiB and 40×
    less for forward KL); at 2048 tokens, dims 512 and 32768 entries the value and
    gradients take 0.73× (JSD) and 0.76× (forward KL) the materialized time on CPU with
    256-token blocks (``benchmarks/``).
    ``reduction="none"`` re-forms each block in the backward pass (two more matmuls per
    head).

    Numerics: softmaxes are max-shifted and accumulated in float32 (float64 for float64
    inputs), the log-ratios are formed from log-probabilities (the mixture of the JSD from
    the probabilities); finite for finite logits, and an entry of probability 0 adds 0.
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
      chunk_size: tokens per block (static; memory grows as ``chunk_size × vocab``), or
        None for all tokens in one block.
      class_axis_name: mapped axis over which both heads are split by vocabulary (tensor
        parallel heads: ``*_weight`` and ``*_bias`` are this device's slices of the same
        vocabulary entries); the hidden states are then the same on every device.
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
      arXiv:2306.13649. Hsu et al., "Liger Kernel: Efficient Triton Kernels for LLM
      Training", 2024, arXiv:2410.10989 (blocks of tokens, gradients in the forward pass).
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
    _checks.reduction(reduction, _checks.REDUCTIONS)
    mask, (h_s, h_t) = masked_inputs(where, shape, h_s, h_t)
    h_s, h_t = h_s.reshape(-1, h_s.shape[-1]), h_t.reshape(-1, h_t.shape[-1])
    dtype = accumulation_dtype(h_s, w_s, h_t, w_t)
    tokens = h_s.shape[0]
    endpoint = static_endpoint(beta)
    options = distill_blocks.Options(
        max(1, min(tokens if chunk_size is None else int(chunk_size), tokens)),
        endpoint,
        class_axis_name,
    )
    rows = (1 / jnp.asarray(temperature, dtype), jnp.asarray(beta, dtype))
    student, teacher = (h_s, w_s, b_s), (h_t, w_t, b_t)
    if reduction == "none":
        loss = distill_blocks.token_divergence(options, student, teacher, rows)
        return reduce_loss(loss.reshape(shape), reduction, where=mask, axis_name=axis_name)
    # "mean" and "sum" are Σ c_n ℓ_n for weights the gradient does not reach: the kernel
    # forms the gradients in its forward pass.
    counted = linear_weights(
        None if mask is None else mask.reshape(-1),
        (tokens,),
        reduction,
        axis_name=axis_name,
        dtype=dtype,
    )
    total = distill_blocks.weighted_divergence(options, student, teacher, rows, counted)
    return global_sum(total, axis_name)
