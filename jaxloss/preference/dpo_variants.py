"""Direct preference optimization with the loss types and f-divergences of TRL's ``DPOTrainer``.

``dpo`` takes one summed log-probability per answer, ``[batch]`` (``sequence_logprobs``),
and returns ``[batch]`` for ``reduction="none"``. The per-pair formulas are TRL 1.16's
``DPOTrainer._compute_loss``; ``"aot"`` and ``"aot_unpaired"`` sort over the batch (and
over the devices of ``axis_name``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._deprecation import renamed
from jaxloss._reduce import masked_inputs, reduce_loss, zero_masked
from jaxloss._sharding import AxisName, gather_batch
from jaxloss.preference.pairs import _smoothed_logistic

DPO_LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "robust",
    "bco_pair",
    "sppo_hard",
    "nca_pair",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "exo_pair",
)
F_DIVERGENCES = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")
# The loss types of the chosen − rejected score difference alone: the f-DPO
# reparameterization's β log Z(x) cancels only there (TRL applies the f-divergence to every
# loss type; jaxloss refuses it where the result is not the f-DPO objective).
_F_DIVERGENCE_TYPES = ("sigmoid", "hinge", "robust", "exo_pair", "discopop")
_SMOOTHED_TYPES = ("sigmoid", "robust", "exo_pair", "aot", "aot_unpaired")
# As TRL's: exp((α − 1) u) is taken of at most e^80 (float32 range).
_ALPHA_EXPONENT_MAX = 80.0


@jax.custom_jvp
def _forward_kl_score(logratio: jax.Array) -> jax.Array:
    """Forward KL's f'(u) = 1 − e^{−u}, its derivative e^{−u} at most the dtype's largest
    finite value: past u ≈ −88.7 (float32) e^{−u} is inf, and a rejected log-ratio there
    makes z = +inf, where the losses' slope in z is 0: 0 times inf would be NaN."""
    return -jnp.expm1(-logratio)


@_forward_kl_score.defjvp
def _forward_kl_score_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    (logratio,), (logratio_dot,) = primals, tangents
    score = _forward_kl_score(logratio)
    # 1 − f'(u) = 1 + expm1(−u): autodiff's e^{−u} of expm1, bit for bit where finite.
    slope = jnp.minimum(1 - score, jnp.finfo(score.dtype).max)
    return score, slope * logratio_dot


def _f_score(logratio: jax.Array, f_divergence: str, alpha: ArrayLike) -> jax.Array:
    """f'(π/π_ref) of the f-divergence, from ``logratio = log π − log π_ref`` (f-DPO)."""
    if f_divergence == "reverse_kl":
        return logratio
    if f_divergence == "forward_kl":
        return _forward_kl_score(logratio)
    if f_divergence == "js_divergence":
        return math.log(2) + _numerics.log_sigmoid(logratio)
    gap = jnp.asarray(alpha, logratio.dtype) - 1
    # α = 1 is reverse KL (TRL's threshold); the double where keeps its gradient finite.
    near_one = jnp.abs(gap) < 1e-6
    safe_gap = jnp.where(near_one, 1, gap)
    # Capped as TRL's torch.clamp: the full gradient at the cap itself.
    power = jnp.expm1(_numerics.clamp(safe_gap * logratio, high=_ALPHA_EXPONENT_MAX)) / safe_gap
    return jnp.where(near_one, logratio, power)


def _rank_partners(
    first: jax.Array, second: jax.Array, mask: jax.Array | None, axis_name: AxisName
) -> jax.Array:
    """For each row, the value of ``second`` of the same rank as its ``first`` (AOT).

    Both are sorted over the batch (axis 0, all devices), masked rows last, so the valid
    rows pair among themselves as if the masked ones were dropped.
    """
    valid = jnp.ones(first.shape, bool) if mask is None else jnp.broadcast_to(mask, first.shape)
    local = first.shape[0]
    first, offset = gather_batch(first, axis_name)
    second, _ = gather_batch(second, axis_name)
    invalid, _ = gather_batch(~valid, axis_name)
    first_order = jnp.lexsort((first, invalid), axis=0)
    second_sorted = jnp.take_along_axis(second, jnp.lexsort((second, invalid), axis=0), axis=0)
    partners = jnp.take_along_axis(second_sorted, jnp.argsort(first_order, axis=0), axis=0)
    return jax.lax.dynamic_slice_in_dim(partners, offset, local, axis=0)


def _logistic_dpo(
    pc: jax.Array,
    pr: jax.Array,
    rc: jax.Array,
    rr: jax.Array,
    beta: jax.Array,
    label_smoothing: ArrayLike,
) -> jax.Array:
    """DPO's ``(1 - ε) softplus(-z) + ε softplus(z)``, ``z = β ((pc - rc) - (pr - rr))``, per
    pair, with its partials written out (``_numerics.elementwise``): ``∂ℓ/∂z = ε - σ(-z)``,
    times ±β for the four log-probabilities, ``h`` for β and ``z`` for ε. Without them XLA
    writes ``z`` and ``σ(-z)`` out between the value and the four gradients."""
    smoothed = not _checks.is_static_zero(label_smoothing)

    def margin(pc: jax.Array, pr: jax.Array, rc: jax.Array, rr: jax.Array) -> jax.Array:
        return (pc - rc) - (pr - rr)

    def partials(*args: jax.Array) -> tuple[jax.Array | None, ...]:
        pc, pr, rc, rr, beta, epsilon = args
        h = margin(pc, pr, rc, rr)
        z = beta * h
        slope = -jax.nn.sigmoid(-z)
        if smoothed:
            slope = slope + epsilon
        by_z = slope * beta
        return by_z, -by_z, -by_z, by_z, slope * h, z if smoothed else None

    @_numerics.elementwise(partials)
    def loss(*args: jax.Array) -> jax.Array:
        pc, pr, rc, rr, beta, epsilon = args
        # The pair losses' own smoothed logistic (its softplus has no select).
        return _smoothed_logistic(beta * margin(pc, pr, rc, rr), epsilon if smoothed else 0.0)

    epsilon = jnp.asarray(label_smoothing, pc.dtype)
    return loss(pc, pr, rc, rr, beta, epsilon)


def _pair_losses(
    loss_type: str,
    chosen: jax.Array,
    rejected: jax.Array,
    z: jax.Array,
    beta: jax.Array,
    epsilon: ArrayLike,
    tau: ArrayLike,
    shift: ArrayLike,
) -> jax.Array:
    """Per-pair losses from the log-ratios and ``z = β (score_c − score_r)``."""
    if loss_type in ("sigmoid", "aot", "aot_unpaired"):
        return _smoothed_logistic(z, epsilon)
    if loss_type == "hinge":
        return jax.nn.relu(1 - z)
    if loss_type == "ipo":
        return jnp.square(chosen - rejected - 1 / (2 * beta))
    if loss_type == "robust" and _checks.is_static_zero(epsilon):
        # DPO's own loss: the form below is 0 · softplus(+inf) = NaN at z = +inf.
        return _numerics.softplus(-z)
    epsilon = jnp.asarray(epsilon, z.dtype)
    if loss_type == "robust":
        clean = (1 - epsilon) * _numerics.softplus(-z) - epsilon * _numerics.softplus(z)
        return clean / (1 - 2 * epsilon)
    if loss_type == "exo_pair":
        # KL([σ(z), σ(−z)] ‖ [1 − ε, ε]). At z = ±inf (an impossible answer) its limit,
        # flat in z: σ(∓z) log σ(∓z) → 0 (0 · −inf there), so −log(1 − ε) or −log ε.
        infinite = jnp.isinf(z)
        finite_z = jnp.where(infinite, 0, z)
        win = jax.nn.sigmoid(finite_z) * (_numerics.log_sigmoid(finite_z) - jnp.log1p(-epsilon))
        lose = jax.nn.sigmoid(-finite_z) * (_numerics.log_sigmoid(-finite_z) - jnp.log(epsilon))
        limit = jnp.where(z > 0, -jnp.log1p(-epsilon), -jnp.log(epsilon))
        return jnp.where(infinite, limit, win + lose)
    if loss_type == "discopop":
        # At z = −inf (an impossible chosen answer) e^{log σ(z/τ) − z} is e^{−inf + inf}:
        # there the limit +inf, with the slope −1 of the softplus term (m e^{−z} → 0, τ < 1).
        impossible = z == -jnp.inf
        finite_z = jnp.where(impossible, 0, z)
        scaled = finite_z / jnp.asarray(tau, z.dtype)
        # σ(z/τ) e^{−z} as one exponential: finite where e^{−z} alone overflows.
        loss = jax.nn.sigmoid(-scaled) * _numerics.softplus(-finite_z) + jnp.exp(
            _numerics.log_sigmoid(scaled) - finite_z
        )
        return jnp.where(impossible, _numerics.softplus(-z), loss)
    chosen_reward, rejected_reward = beta * chosen, beta * rejected
    if loss_type == "bco_pair":
        shift = jnp.asarray(shift, z.dtype)
        return _numerics.softplus(shift - chosen_reward) + _numerics.softplus(
            rejected_reward - shift
        )
    if loss_type == "nca_pair":
        return (
            _numerics.softplus(-chosen_reward)
            + 0.5 * _numerics.softplus(chosen_reward)
            + 0.5 * _numerics.softplus(rejected_reward)
        )
    if loss_type == "sppo_hard":
        return jnp.square(chosen - 0.5 / beta) + jnp.square(rejected + 0.5 / beta)
    if loss_type == "apo_zero":
        return jax.nn.sigmoid(-chosen_reward) + jax.nn.sigmoid(rejected_reward)
    # "apo_down"
    return jax.nn.sigmoid(chosen_reward) + jax.nn.sigmoid(rejected_reward - chosen_reward)


def _check_options(
    loss_type: str,
    label_smoothing: ArrayLike,
    f_divergence: str,
    discopop_tau: ArrayLike,
    reward_shift: ArrayLike,
) -> None:
    _checks.choice(loss_type, DPO_LOSS_TYPES, "loss_type")
    _checks.choice(f_divergence, F_DIVERGENCES, "f_divergence")
    _checks.in_range(label_smoothing, "label_smoothing", low=0, high=1)
    _checks.in_range(discopop_tau, "discopop_tau", low=0, low_open=True)
    if loss_type not in _SMOOTHED_TYPES:
        _checks.unused_is_zero(
            label_smoothing,
            f"`label_smoothing` applies to loss_type in {_SMOOTHED_TYPES} only (0 for "
            f"loss_type={loss_type!r})",
        )
    # Concrete values of any kind (a NumPy or JAX scalar too) raise; traced ones are checked
    # in checked mode. Robust's divisor 1 − 2ε turns negative past ½ (gradient ascent).
    if loss_type == "robust":
        _checks.in_range(label_smoothing, "label_smoothing", low=0, high=0.5, high_open=True)
    if loss_type == "exo_pair":  # the paper uses 1e-3
        _checks.in_range(
            label_smoothing, "label_smoothing", low=0, high=1, low_open=True, high_open=True
        )
    if loss_type != "bco_pair":
        _checks.unused_is_zero(
            reward_shift,
            f"`reward_shift` applies to loss_type='bco_pair' only (0 for loss_type={loss_type!r})",
        )
    if f_divergence != "reverse_kl" and loss_type not in _F_DIVERGENCE_TYPES:
        raise ValueError(
            f"`f_divergence={f_divergence!r}` applies to loss_type in {_F_DIVERGENCE_TYPES} only, "
            f"got loss_type={loss_type!r}."
        )


@renamed(
    policy_chosen_logps="policy_chosen_logprobs",
    policy_rejected_logps="policy_rejected_logprobs",
    ref_chosen_logps="ref_chosen_logprobs",
    ref_rejected_logps="ref_rejected_logprobs",
)
def dpo(
    policy_chosen_logprobs: ArrayLike,
    policy_rejected_logprobs: ArrayLike,
    ref_chosen_logprobs: ArrayLike,
    ref_rejected_logprobs: ArrayLike,
    *,
    beta: ArrayLike = 0.1,
    label_smoothing: ArrayLike = 0.0,
    loss_type: str = "sigmoid",
    f_divergence: str = "reverse_kl",
    f_divergence_alpha: ArrayLike = 0.5,
    discopop_tau: ArrayLike = 0.05,
    reward_shift: ArrayLike = 0.0,
    weights: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Direct preference optimization (Rafailov et al. 2023) and the variants of TRL's DPO.

    With the log-ratios :math:`u_c = \log\pi_c - \log\pi^{ref}_c`,
    :math:`u_r = \log\pi_r - \log\pi^{ref}_r`, the margin :math:`h = u_c - u_r`,
    :math:`z = \beta (f'(u_c) - f'(u_r))` (:math:`f'(u) = u` for the default reverse KL, so
    :math:`z = \beta h`) and ε = ``label_smoothing``, as TRL 1.16's ``DPOTrainer``:

    * ``"sigmoid"``: :math:`-(1-\varepsilon)\log\sigma(z) - \varepsilon\log\sigma(-z)`
      (conservative DPO; TRL 1.16's ``"sigmoid"`` has no ε, so only ε = 0 is TRL's);
    * ``"robust"``: :math:`\big(-(1-\varepsilon)\log\sigma(z) + \varepsilon\log\sigma(-z)\big)
      / (1 - 2\varepsilon)`, ε ∈ [0, ½) (rDPO, Chowdhury et al. 2024: an unbiased loss under
      labels flipped with probability ε, where cDPO's is the expected loss under them);
    * ``"hinge"``: :math:`\max(0, 1 - z)` (SLiC); ``"ipo"``: :math:`(h - \tfrac{1}{2\beta})^2`
      (Azar et al. 2023; TRL feeds it log-probabilities averaged over tokens:
      ``sequence_logprobs(..., average=True)``);
    * ``"exo_pair"``: :math:`\sigma(z)\log\frac{\sigma(z)}{1-\varepsilon} + \sigma(-z)\log
      \frac{\sigma(-z)}{\varepsilon}`, ε ∈ (0, 1) (EXO, Ji et al. 2024; the paper's ε = 1e-3);
    * ``"discopop"``: :math:`(1 - m)(-\log\sigma(z)) + m e^{-z}`, :math:`m = \sigma(z/\tau)`,
      τ = ``discopop_tau`` (Chris Lu et al. 2024);
    * ``"nca_pair"``: :math:`-\log\sigma(\beta u_c) - \tfrac12\log\sigma(-\beta u_c)
      - \tfrac12\log\sigma(-\beta u_r)` (NCA, Chen et al. 2024);
    * ``"bco_pair"``: :math:`-\log\sigma(\beta u_c - \delta) - \log\sigma(\delta - \beta u_r)`,
      δ = ``reward_shift`` (BCO, Jung et al. 2024). TRL 1.16 uses δ = 0; the paper and TRL
      ≤ 0.20 use the running mean of the rewards βu of every chosen and rejected answer so
      far, including this batch's: keep it outside, as optax keeps a state, e.g.
      ``δ ← (n δ + mean_batch) / (n + 1)`` with ``mean_batch`` the ``stop_gradient`` mean of
      ``β·concat(u_c, u_r)`` and ``n`` the batches seen (TRL's ``RunningMoments``);
    * ``"sppo_hard"``: :math:`(u_c - \tfrac{1}{2\beta})^2 + (u_r + \tfrac{1}{2\beta})^2`
      (SPPO with hard win probabilities, Wu et al. 2024);
    * ``"apo_zero"``: :math:`1 - \sigma(\beta u_c) + \sigma(\beta u_r)`, and ``"apo_down"``:
      :math:`\sigma(\beta u_c) + 1 - \sigma(\beta h)` (APO, D'Oosterlinck et al. 2024);
    * ``"aot"``: the smoothed ``"sigmoid"`` loss of :math:`\beta (s_i - s^{ref}_i)` with the
      policy's margins :math:`\log\pi_c - \log\pi_r` and the reference's sorted separately
      over the batch and paired by rank; ``"aot_unpaired"`` sorts :math:`u_c` and
      :math:`u_r` (AOT, Melnyk et al. 2024). The batch's ranks couple its pairs: row i of
      ``"none"`` holds the loss of the rank of its policy margin (of its :math:`u_c` for
      ``"aot_unpaired"``), the
      valid rows of ``where`` are ranked among themselves, and with ``axis_name`` the
      ranks are over every device.

    ``f_divergence`` (f-DPO, Wang et al. 2024; for ``"sigmoid"``, ``"hinge"``, ``"robust"``,
    ``"exo_pair"``, ``"discopop"``): ``"reverse_kl"`` :math:`f'(u) = u`, ``"forward_kl"``
    :math:`1 - e^{-u}`, ``"js_divergence"`` :math:`\log 2 + \log\sigma(u)`,
    ``"alpha_divergence"`` :math:`(e^{(\alpha-1)u} - 1)/(\alpha - 1)` with the exponent
    capped at 80 as TRL's (α = ``f_divergence_alpha``; α = 1 is reverse KL).

    ``weights`` rescale each pair's loss (the mean still divides by the number of pairs), as
    TRL's ``use_weighting`` does with WPO's weights (Zhou et al. 2024), constants the product
    over the pair's two answers of :math:`\exp\big(\mathrm{mean}_t (\log p_t(y_t) -
    \log\sum_v p_t(v)^2)\big)` over their valid tokens: with ``logits`` ``[batch, time,
    vocab]``, ``token_logprobs(logits, labels) − logsumexp(2 log_softmax(logits), −1)``,
    averaged over the valid tokens, exponentiated, under ``stop_gradient``. Not for AOT,
    whose losses belong to ranks, not pairs (TRL refuses it too).

    LD-DPO (Liu et al. 2024, TRL's ``ld_alpha``) changes the inputs, not the loss: each
    answer's log-probability is the sum over its first ``min(len_c, len_r)`` valid tokens
    plus α times the sum over the rest, for the policy and the reference alike. With
    ``position = cumsum(valid, -1)`` and ``shared = valid & (position <= min(len_c, len_r))``:
    ``sequence_logprobs(logits, tokens, where=shared) + α sequence_logprobs(logits, tokens,
    where=valid & ~shared)``.

    The policy's implicit reward of an answer is ``β (log π − log π_ref)``; DPO fits the
    Bradley–Terry model on those rewards without a separate reward model.

    Numerics: the logistic terms are ``softplus`` and ``log_sigmoid``, ``"hinge"`` a
    ``relu``, and DiscoPOP's :math:`m e^{-z}` one exponential
    :math:`e^{\log\sigma(z/\tau) - z}`, so all of these are finite for all finite inputs
    (DiscoPOP for τ < 1). The squares (``"ipo"``, ``"sppo_hard"``) overflow past ~1.8e19.
    ``"forward_kl"``'s :math:`e^{-u}`, the divergence's own, overflows past
    :math:`u \approx -88.7` (float32): there :math:`u_c` makes :math:`z = -\infty` (the loss
    +inf) and :math:`u_r` makes :math:`z = +\infty` (the loss its limit, below). The
    derivative :math:`e^{-u}` is taken as at most the dtype's largest finite value, so the
    gradient in :math:`u` is :math:`\partial\ell/\partial z \cdot \beta` times at most
    that: 0 where the loss is flat in :math:`z` (at :math:`z = +\infty` all but ε > 0 of
    ``"sigmoid"`` and ``"robust"``, whose loss is ±inf there), not 0 · inf = NaN, and
    about :math:`-3.4 \cdot 10^{38} \beta` per pair in :math:`u_c` for ``"sigmoid"`` (−inf
    where that product overflows). That is reverse mode; forward mode multiplies by β
    first, NaN at :math:`z = +\infty` for β > 1. At :math:`z = \pm\infty` (that overflow,
    or a policy log-probability of −inf: an impossible answer) each loss is its limit:
    ``"exo_pair"`` :math:`-\log\varepsilon` at −inf and :math:`-\log(1-\varepsilon)` at
    +inf, flat; DiscoPOP +inf at −inf with its softplus term's slope −1 in :math:`z` (the
    limit for τ ≤ 1; :math:`m e^{-z}` grows faster for τ > 1), and 0 at +inf; ``"robust"``
    −inf at +inf for ε > 0 (it is unbounded below), 0 for ε = 0 given as a Python 0 (a
    traced 0 times softplus(+inf) is NaN, as for ``"sigmoid"``'s and AOT's ε).

    Args:
      policy_chosen_logprobs: ``[batch]`` summed token log-probabilities of the chosen answers
        under the policy (``sequence_logprobs``).
      policy_rejected_logprobs: ``[batch]`` the same for the rejected answers.
      ref_chosen_logprobs: ``[batch]`` chosen answers under the frozen reference model.
      ref_rejected_logprobs: ``[batch]`` rejected answers under the reference model.
      beta: β, the strength of the KL regularization toward the reference (τ for IPO).
      label_smoothing: ε of ``"sigmoid"``, ``"robust"``, ``"exo_pair"``, ``"aot"`` and
        ``"aot_unpaired"``; must be 0 for the other loss types.
      loss_type: one of the names above.
      f_divergence: ``"reverse_kl"``, ``"forward_kl"``, ``"js_divergence"`` or
        ``"alpha_divergence"``.
      f_divergence_alpha: α of ``"alpha_divergence"`` (TRL's ``f_alpha_divergence_coef``).
      discopop_tau: τ of ``"discopop"``, > 0.
      reward_shift: δ of ``"bco_pair"``; must be 0 for the other loss types.
      weights: optional ``[batch]`` per-pair factors of the loss (WPO's weights).
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum; global ranks for AOT).

    Returns:
      A float32 scalar, or the per-pair losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> pc, pr, rc, rr = (jnp.array([v]) for v in (-10.0, -12.0, -11.0, -11.0))
      >>> round(float(jaxloss.dpo(pc, pr, rc, rr, beta=0.5)), 4)  # h = 2: −log σ(1)
      0.3133
      >>> float(jaxloss.dpo(pc, pr, rc, rr, beta=0.5, loss_type="ipo"))  # (2 − 1)²
      1.0
      >>> float(jaxloss.dpo(pc, pr, rc, rr, beta=0.5, loss_type="sppo_hard"))  # 0² + 0²
      0.0

    References:
      Rafailov et al., "Direct Preference Optimization", NeurIPS 2023. Azar et al.,
      arXiv:2310.12036, 2023 (IPO). Zhao et al., arXiv:2305.10425, 2023 (SLiC). Mitchell,
      "A note on DPO with noisy preferences and relationship to IPO", 2023 (cDPO).
      Chowdhury et al., "Provably Robust DPO", ICML 2024. Ji et al., "Towards Efficient
      Exact Optimization of Language Model Alignment", ICML 2024 (EXO). Chen et al., "Noise
      Contrastive Alignment of Language Models with Explicit Rewards", NeurIPS 2024 (NCA).
      Jung et al., "Binary Classifier Optimization for Large Language Model Alignment",
      arXiv:2404.04656, 2024. Wu et al., "Self-Play Preference Optimization",
      arXiv:2405.00675, 2024. Melnyk et al., "Distributional Preference Alignment of LLMs
      via Optimal Transport", NeurIPS 2024 (AOT). D'Oosterlinck et al., "Anchored
      Preference Optimization and Contrastive Revisions", arXiv:2408.06266, 2024. Chris Lu
      et al., "Discovering Preference Optimization Algorithms with and for Large Language
      Models", NeurIPS 2024 (DiscoPOP). Wang et al., "Beyond Reverse KL: Generalizing
      Direct Preference Optimization with Diverse Divergence Constraints", ICLR 2024.
      Liu et al., arXiv:2409.06411, 2024 (LD-DPO). Zhou et al., "WPO: Enhancing RLHF with Weighted
      Preference Optimization", EMNLP 2024.
    """
    _checks.in_range(beta, "beta", low=0, low_open=True)
    _check_options(loss_type, label_smoothing, f_divergence, discopop_tau, reward_shift)
    (pc, pr, rc, rr), shape = _checks.broadcast_floats(
        allow_inf=True,
        policy_chosen_logprobs=policy_chosen_logprobs,
        policy_rejected_logprobs=policy_rejected_logprobs,
        ref_chosen_logprobs=ref_chosen_logprobs,
        ref_rejected_logprobs=ref_rejected_logprobs,
    )
    mask, (pc, pr, rc, rr) = masked_inputs(where, shape, pc, pr, rc, rr)
    if weights is not None:
        if loss_type in ("aot", "aot_unpaired"):
            raise ValueError(f"`weights` do not apply to loss_type={loss_type!r}: it sorts pairs.")
        weights = _checks.float_array(weights, "weights", allow_int=True).astype(pc.dtype)
        weights = _checks.broadcast_to(weights, shape, "weights", "policy_chosen_logprobs")
        (weights,) = zero_masked(mask, weights)
    beta = jnp.asarray(beta, pc.dtype)
    chosen, rejected = pc - rc, pr - rr
    if loss_type == "aot":
        margins = pc - pr
        z = beta * (margins - _rank_partners(margins, rc - rr, mask, axis_name))
    elif loss_type == "aot_unpaired":
        z = beta * (chosen - _rank_partners(chosen, rejected, mask, axis_name))
    elif loss_type == "sigmoid" and f_divergence == "reverse_kl":
        z = None  # DPO itself: one elementwise pass for the value, one for the gradients.
    else:
        chosen_score = _f_score(chosen, f_divergence, f_divergence_alpha)
        z = beta * (chosen_score - _f_score(rejected, f_divergence, f_divergence_alpha))
    if z is None:
        loss = _logistic_dpo(pc, pr, rc, rr, beta, label_smoothing)
    else:
        loss = _pair_losses(
            loss_type, chosen, rejected, z, beta, label_smoothing, discopop_tau, reward_shift
        )
    if weights is not None:
        loss = loss * weights
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)
