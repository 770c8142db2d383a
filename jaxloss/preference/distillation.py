r"""Knowledge distillation on logits: forward and reverse KL, GKD's generalized JSD,
DistiLLM's skew KL and the total variation distance.

All take student and teacher logits ``[..., tokens, vocab]``, soften them with a
temperature, and compare the two distributions over the last (vocabulary) axis, one value
per token, reduced over the unmasked tokens (of every device, with ``axis_name``).
Half-precision logits are computed, and the divergences returned, in float32. Everything
starts from log-probabilities (shifted logits less their log-normaliser) with
:math:`0 \log 0 = 0`, so a teacher or student that gives a vocabulary entry probability 0
(a −inf logit) contributes nothing there, with finite gradients. All four run on
``_kernels.row_kl``: a few row sums and a recomputed gradient, no array of the logits' size
besides the gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks
from jaxloss._kernels.row_kl import jsd_rows, kl_rows, skew_rows, tvd_rows
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName

DIRECTIONS = ("forward", "reverse")


def _logits(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    temperature: ArrayLike,
    where: ArrayLike | None,
) -> tuple[jax.Array | None, jax.Array, jax.Array]:
    """The token mask and both logits, checked and through the masking door (dtype kept)."""
    _checks.in_range(temperature, "temperature", low=0, low_open=True)
    _checks.equal_shapes(student_logits=student_logits, teacher_logits=teacher_logits)
    logits = []
    for x, name in ((student_logits, "student_logits"), (teacher_logits, "teacher_logits")):
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"`{name}` must be a floating-point array, got dtype {x.dtype}.")
        if x.ndim < 1:
            raise ValueError(f"`{name}` needs a vocabulary axis, got a scalar.")
        logits.append(x)
    student, teacher = logits
    mask, (student, teacher) = masked_inputs(where, student.shape[:-1], student, teacher)
    # After the masking door: padded tokens may hold anything, kept tokens no NaN nor +inf.
    _checked.finite(student, "student_logits", allow_inf=True)
    _checked.finite(teacher, "teacher_logits", allow_inf=True)
    return mask, student, teacher


def _kernel_inputs(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    temperature: ArrayLike,
    where: ArrayLike | None,
) -> tuple[jax.Array | None, jax.Array, jax.Array, jax.Array]:
    """``_logits`` and the inverse temperature τ = 1/T (float32 or wider), as the row
    kernels (``_kernels.row_kl``: no array of the logits' size besides the gradients) take
    them."""
    mask, student, teacher = _logits(student_logits, teacher_logits, temperature, where)
    inverse_t = 1 / jnp.asarray(temperature, jnp.promote_types(student.dtype, jnp.float32))
    return mask, student, teacher, inverse_t


def _kl_rows(
    student: jax.Array, teacher: jax.Array, inverse_t: jax.Array, forward: bool
) -> jax.Array:
    """Per token, KL(teacher ‖ student) (``forward``) or KL(student ‖ teacher)."""
    return kl_rows(teacher, student, inverse_t) if forward else kl_rows(student, teacher, inverse_t)


def distill_kl(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    *,
    direction: str = "forward",
    temperature: ArrayLike = 1.0,
    scale_by_temperature_squared: bool = False,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Forward or reverse KL divergence between teacher and student token distributions.

    .. math::
      \ell_t = \mathrm{KL}(p_t \,\|\, q_t) = \sum_v p_{t,v} (\log p_{t,v} - \log q_{t,v})
      \ (\text{forward}), \qquad
      \ell_t = \mathrm{KL}(q_t \,\|\, p_t)\ (\text{reverse}),

    with :math:`p_t = \mathrm{softmax}(z^{teacher}_t / T)` and
    :math:`q_t = \mathrm{softmax}(z^{student}_t / T)` over the vocabulary, :math:`T` =
    ``temperature``, :math:`0 \log 0 = 0`. Forward KL is Hinton et al.'s distillation loss
    (mode-covering: the student spreads over everything the teacher allows); reverse KL is
    the mode-seeking one of MiniLLM (Gu et al. 2024). They equal TRL 1.16's GKD
    ``generalized_jsd_loss`` at ``beta=0`` and ``beta=1`` (and ``generalized_jsd`` here).

    ``scale_by_temperature_squared`` multiplies by :math:`T^2`, as Hinton et al. advise and
    torch's knowledge-distillation tutorial and DistilBERT do, so the gradients keep their
    size as :math:`T` changes when this is mixed with a hard-label cross-entropy. TRL's GKD
    and distillation trainers do not scale, hence the default.

    Numerics: finite for finite logits. A −inf logit (a vocabulary entry ruled out) gives
    probability 0 there: no contribution and a finite gradient when it is the teacher's in
    forward KL (the student's in reverse), and +inf when the other distribution puts mass
    there, also where that mass underflows float32 (a log-probability below about −88),
    with the same gradients for the distribution whose entry is ruled out. TRL computes
    ``0 · (−inf)`` there and returns NaN.

    Args:
      student_logits: ``[..., tokens, vocab]`` logits of the student, any float dtype
        (half precision is computed and returned in float32).
      teacher_logits: the teacher's logits, the same shape.
      direction: ``"forward"`` (KL(teacher ‖ student)) or ``"reverse"`` (KL(student ‖
        teacher)).
      temperature: :math:`T > 0`, dividing both logits.
      scale_by_temperature_squared: multiply the divergence by :math:`T^2` (static).
      where: optional boolean mask ``[..., tokens]`` (the logits' shape without the
        vocabulary axis) of the tokens that count, e.g. ``labels != -100``; masked tokens
        may hold anything (NaN, ±inf) and get zero gradients.
      reduction: ``"mean"`` (over the unmasked tokens: TRL's ``"batchmean"`` with labels),
        ``"sum"`` or ``"none"`` (per token, ``[..., tokens]``).
      axis_name: mapped axis of the batch (the mean over the tokens of every device).

    Returns:
      A float32 scalar, or the per-token divergences for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> student, teacher = jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.9, 0.1]))
      >>> round(float(jaxloss.distill_kl(student, teacher)), 4)
      0.3681
      >>> round(float(jaxloss.distill_kl(student, teacher, direction="reverse")), 4)
      0.5108

    References:
      Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network",
      arXiv:1503.02531, 2015. Gu, Dong, Wei and Huang, "MiniLLM: Knowledge Distillation of
      Large Language Models", ICLR 2024, arXiv:2306.08543.
    """
    _checks.choice(direction, DIRECTIONS, "direction")
    mask, student, teacher, inverse_t = _kernel_inputs(
        student_logits, teacher_logits, temperature, where
    )
    loss = _kl_rows(student, teacher, inverse_t, direction == "forward")
    if scale_by_temperature_squared:
        loss = loss * jnp.square(jnp.asarray(temperature, loss.dtype))
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def static_endpoint(beta: ArrayLike) -> int | None:
    """0 or 1 for a Python ``beta`` at an endpoint (a single KL, chosen at trace time),
    else None (a traced ``beta`` at an endpoint is found at run time)."""
    return int(beta) if isinstance(beta, (int, float)) and beta in (0, 1) else None


def generalized_jsd(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    *,
    beta: ArrayLike = 0.5,
    temperature: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Generalized Jensen–Shannon divergence of GKD (Agarwal et al. 2024), as TRL 1.16.

    .. math::
      \ell_t = \beta\, \mathrm{KL}(p_t \,\|\, m_t) + (1 - \beta)\, \mathrm{KL}(q_t \,\|\, m_t),
      \qquad m_t = \beta\, p_t + (1 - \beta)\, q_t,

    per token, with teacher :math:`p_t = \mathrm{softmax}(z^{teacher}_t / T)`, student
    :math:`q_t = \mathrm{softmax}(z^{student}_t / T)` and :math:`\beta` = ``beta``, as TRL's
    ``generalized_jsd_loss`` (which forms the mixture in log space; here it is formed from
    the probabilities: where it underflows, so do both, and the entry weighs 0). As
    in TRL, the endpoints are defined apart: ``beta=0`` is the forward
    :math:`\mathrm{KL}(p \,\|\, q)` and ``beta=1`` the reverse :math:`\mathrm{KL}(q \,\|\,
    p)` (``distill_kl``), though the formula above tends to 0 there. ``beta=0.5`` is the
    symmetric Jensen–Shannon divergence, bounded by :math:`\log 2`.

    TRL's ``reduction="batchmean"`` with ``labels`` (its GKD default) is the ``"mean"``
    here with ``where = labels != -100``; TRL's ``"mean"`` divides by the vocabulary size
    too, and its ``"batchmean"`` without labels by the batch size only.

    Numerics: finite for finite logits; an entry with probability 0 under both
    distributions contributes 0 with finite gradients (TRL gives NaN, from ``0 · (−inf)``),
    and the divergence stays finite when only one of them rules an entry out (the
    mixture keeps it), unlike KL at the endpoints.

    Args:
      student_logits: ``[..., tokens, vocab]`` student logits, any float dtype (half
        precision is computed and returned in float32).
      teacher_logits: teacher logits of the same shape.
      beta: :math:`\beta \in [0, 1]`, the teacher's weight in the mixture.
      temperature: :math:`T > 0`, dividing both logits (no :math:`T^2` factor, as TRL).
      where: optional boolean mask ``[..., tokens]`` of the tokens that count (TRL's
        ``labels != -100``); masked tokens may hold anything and get zero gradients.
      reduction: ``"mean"`` over the unmasked tokens, ``"sum"``, or ``"none"``
        (``[..., tokens]``).
      axis_name: mapped axis of the batch (the mean over the tokens of every device).

    Returns:
      A float32 scalar, or the per-token divergences for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> student, teacher = jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.9, 0.1]))
      >>> round(float(jaxloss.generalized_jsd(student, teacher, beta=0.5)), 4)  # m = (0.7, 0.3)
      0.1017

    References:
      Agarwal, Vieillard, Zhou, Stanczyk, Ramos, Geist and Bachem, "On-Policy Distillation
      of Language Models: Learning from Self-Generated Mistakes", ICLR 2024,
      arXiv:2306.13649.
    """
    _checks.in_range(beta, "beta", low=0, high=1)
    mask, student, teacher, inverse_t = _kernel_inputs(
        student_logits, teacher_logits, temperature, where
    )
    endpoint = static_endpoint(beta)
    if endpoint is not None:
        loss = _kl_rows(student, teacher, inverse_t, endpoint == 0)
    elif isinstance(beta, (int, float)):
        loss = jsd_rows(student, teacher, inverse_t, jnp.asarray(beta, inverse_t.dtype))
    else:  # an array may hold an endpoint, a KL: found at run time
        beta = jnp.asarray(beta, inverse_t.dtype)
        index = jnp.where(beta == 0, 0, jnp.where(beta == 1, 1, 2))
        branches = (
            lambda s, t, tau, b: _kl_rows(s, t, tau, True),
            lambda s, t, tau, b: _kl_rows(s, t, tau, False),
            jsd_rows,
        )
        loss = jax.lax.switch(index, branches, student, teacher, inverse_t, beta)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def skew_kl(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    *,
    alpha: ArrayLike = 0.1,
    direction: str = "forward",
    temperature: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""DistiLLM's skew KL (forward, SKL) or skew reverse KL (SRKL) of teacher and student.

    .. math::
      \ell_t = \mathrm{KL}\big(p_t \,\|\, \alpha p_t + (1 - \alpha) q_t\big)
      \ (\text{forward}), \qquad
      \ell_t = \mathrm{KL}\big(q_t \,\|\, \alpha q_t + (1 - \alpha) p_t\big)
      \ (\text{reverse}),

    per token, with teacher :math:`p_t = \mathrm{softmax}(z^{teacher}_t / T)`, student
    :math:`q_t = \mathrm{softmax}(z^{student}_t / T)` and :math:`\alpha` = ``alpha``: the
    first argument of the KL is mixed, with weight :math:`\alpha`, into the second, as in
    Ko et al.'s α-SKL and α-SRKL and their ``skewed_forward_kl`` / ``skewed_reverse_kl``
    (``lam`` = :math:`\alpha`, default 0.1). :math:`\alpha = 0` is ``distill_kl`` and
    :math:`\alpha = 1` gives 0; for :math:`\alpha > 0` the divergence is at most
    :math:`-\log \alpha`.

    The official code returns, for the forward direction, the cross-entropy
    :math:`-\sum_v p_{t,v} \log m_{t,v}`: the value here less the teacher's entropy, with the
    same student gradients. It has no temperature (``temperature=1`` here).

    Numerics: finite for :math:`\alpha > 0` whatever entries either model rules out with a
    −inf logit (the mixture keeps every entry of the KL's first distribution), with finite
    gradients; at :math:`\alpha = 0` it is +inf where ``distill_kl`` is.

    Computed row by row with no array of the logits' size besides the gradients
    (``_kernels.row_kl.skew_rows``: a few sums over each row, the gradients in closed form).
    Against autodiff of the log-space expression (paired, float32, value and gradient): at
    ``[512, 32768]`` 1.3-1.5x faster, temporary memory 192 → 2 MiB for the student's
    gradient; at ``[4096, 1000]`` 1.7-2x, 47 → 0.7 MiB.

    Args:
      student_logits: ``[..., tokens, vocab]`` logits :math:`z^{student}`, any float dtype.
      teacher_logits: ``[..., tokens, vocab]`` logits :math:`z^{teacher}`.
      alpha: :math:`\alpha \in [0, 1]`, the skew: the weight of the KL's first
        distribution in the mixture.
      direction: ``"forward"`` (SKL, the teacher first) or ``"reverse"`` (SRKL, the
        student first).
      temperature: :math:`T > 0`, dividing both logits.
      where: optional boolean mask ``[..., tokens]`` of the tokens that count (e.g.
        ``labels != -100``); masked tokens may hold anything and get zero gradients.
      reduction: ``"mean"`` (the official code's masked token mean), ``"sum"`` or
        ``"none"`` (``[..., tokens]``).
      axis_name: mapped axis of the batch, or None.

    Returns:
      A float32 scalar, or the per-token divergences for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> student, teacher = jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.9, 0.1]))
      >>> round(float(jaxloss.skew_kl(student, teacher)), 4)  # m = (0.54, 0.46)
      0.3071
      >>> round(float(jaxloss.skew_kl(student, teacher, direction="reverse")), 4)  # (0.86, 0.14)
      0.3653

    References:
      Ko, Kim, Chen and Yun, "DistiLLM: Towards Streamlined Distillation for Large Language
      Models", ICML 2024, arXiv:2402.03898 (https://github.com/jongwooko/distillm).
    """
    _checks.choice(direction, DIRECTIONS, "direction")
    _checks.in_range(alpha, "alpha", low=0, high=1)
    mask, student, teacher, inverse_t = _kernel_inputs(
        student_logits, teacher_logits, temperature, where
    )
    first, second = (teacher, student) if direction == "forward" else (student, teacher)
    if static_endpoint(alpha) == 0:
        loss = kl_rows(first, second, inverse_t)
    elif isinstance(alpha, (int, float)):
        loss = skew_rows(first, second, inverse_t, jnp.asarray(alpha, inverse_t.dtype))
    else:  # a traced α of 0 is the plain KL, picked at run time (the mixture would be q)
        alpha = jnp.asarray(alpha, inverse_t.dtype)
        loss = jax.lax.cond(
            alpha == 0,
            lambda x, y, tau, a: kl_rows(x, y, tau),
            skew_rows,
            first,
            second,
            inverse_t,
            alpha,
        )
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def tvd(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    *,
    temperature: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Total variation distance between teacher and student token distributions.

    .. math::
      \ell_t = \tfrac{1}{2} \sum_v \lvert p_{t,v} - q_{t,v} \rvert \in [0, 1],

    per token, with teacher :math:`p_t = \mathrm{softmax}(z^{teacher}_t / T)` and student
    :math:`q_t = \mathrm{softmax}(z^{student}_t / T)`. A symmetric, bounded distillation
    objective: Wen et al.'s TVD variant of f-distill bounds the sequence-level distance by
    a sum of these word-level terms, and DistiLLM's ``tv_distance`` baseline is this masked
    token mean (at ``temperature=1``).

    Numerics: finite everywhere, −inf logits included (probability 0). Not differentiable
    where :math:`p_{t,v} = q_{t,v}`; the gradient takes :math:`\mathrm{sign}(0) = 0` there.

    Computed row by row with no array of the logits' size besides the gradients
    (``_kernels.row_kl.tvd_rows``: the gradient ``½ q (Σ q s − s)``, ``s = sign(p − q)``,
    recomputes the probabilities). Against autodiff (paired, float32, value and gradient):
    at ``[512, 32768]`` as fast, temporary memory 128 → 0.01 MiB (192 → 0.01 for both
    gradients); at ``[4096, 1000]`` the student's gradient 1.4x slower (twice the
    exponentials), both gradients 1.1x faster, 31–47 → 0.1 MiB.

    Args:
      student_logits: ``[..., tokens, vocab]`` logits :math:`z^{student}`, any float dtype.
      teacher_logits: ``[..., tokens, vocab]`` logits :math:`z^{teacher}`.
      temperature: :math:`T > 0`, dividing both logits.
      where: optional boolean mask ``[..., tokens]`` of the tokens that count; masked tokens
        may hold anything and get zero gradients.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[..., tokens]``).
      axis_name: mapped axis of the batch, or None.

    Returns:
      A float32 scalar, or the per-token distances for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> student, teacher = jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.9, 0.1]))
      >>> round(float(jaxloss.tvd(student, teacher)), 4)  # (|0.9 - 0.5| + |0.1 - 0.5|) / 2
      0.4

    References:
      Wen, Li, Du and Mou, "f-Divergence Minimization for Sequence-Level Knowledge
      Distillation", ACL 2023, arXiv:2307.15190.
    """
    mask, student, teacher, inverse_t = _kernel_inputs(
        student_logits, teacher_logits, temperature, where
    )
    loss = tvd_rows(teacher, student, inverse_t)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)
