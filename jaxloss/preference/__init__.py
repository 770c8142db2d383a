"""Preference, RL and distillation losses: reward models, direct preference optimization,
PPO and GRPO, KL, distillation.

Shapes: sequence-level losses (``bradley_terry``, ``dpo``, ``simpo``, ``orpo``, ``kto``) take
one value per sequence or pair, ``[batch]``, and return ``[batch]`` for
``reduction="none"``. Token-level losses (``ppo_clip``, ``grpo``, ``kl_penalty``) take per-token
log-probabilities ``[batch, time]`` (any shape; inputs broadcast, so per-sequence advantages
``[batch, 1]`` spread over the tokens, as do ``[batch]`` ones) and a ``where`` mask of
padding; their ``"mean"`` is over the valid tokens of the whole batch (and of every device
with ``axis_name``), as TRL's masked mean.

Log-probabilities come from ``token_logprobs`` / ``sequence_logprobs``, which read the
target token's log-softmax without materializing a ``[batch, time, vocab]`` copy, or from
hidden states with ``linear_token_logprobs``, which never forms the logits. The distillation
losses ``distill_kl``, ``generalized_jsd``, ``skew_kl`` and ``tvd`` take student and teacher
logits ``[..., time, vocab]`` and a per-token ``where``; ``linear_distill`` takes both models'
hidden states and heads, in vocabulary blocks.

Every function is finite for log-probabilities of ±1e4 and for masked entries holding
anything: masked entries are replaced before any exponential, so they get exactly zero
gradients.
"""

from jaxloss.preference.distillation import distill_kl as distill_kl
from jaxloss.preference.distillation import generalized_jsd as generalized_jsd
from jaxloss.preference.distillation import skew_kl as skew_kl
from jaxloss.preference.distillation import tvd as tvd
from jaxloss.preference.dpo_variants import dpo as dpo
from jaxloss.preference.grpo import grpo as grpo
from jaxloss.preference.linear_logprobs import linear_distill as linear_distill
from jaxloss.preference.linear_logprobs import linear_token_logprobs as linear_token_logprobs
from jaxloss.preference.logprobs import sequence_logprobs as sequence_logprobs
from jaxloss.preference.logprobs import token_logprobs as token_logprobs
from jaxloss.preference.pairs import bradley_terry as bradley_terry
from jaxloss.preference.pairs import kto as kto
from jaxloss.preference.pairs import orpo as orpo
from jaxloss.preference.pairs import simpo as simpo
from jaxloss.preference.policy import grpo_advantages as grpo_advantages
from jaxloss.preference.policy import kl_penalty as kl_penalty
from jaxloss.preference.policy import ppo_clip as ppo_clip
