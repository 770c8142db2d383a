"""Preference and RLHF losses: reward models, direct preference optimization, PPO, KL.

Shapes: sequence-level losses (``bradley_terry``, ``dpo``, ``simpo``, ``orpo``, ``kto``) take
one value per sequence or pair, ``[batch]``, and return ``[batch]`` for
``reduction="none"``. Token-level losses (``ppo_clip``, ``kl_penalty``) take per-token
log-probabilities ``[batch, time]`` (any shape; inputs broadcast, so per-sequence advantages
``[batch, 1]`` spread over the tokens) and a ``where`` mask of padding; their ``"mean"`` is
over the valid tokens of the whole batch (and of every device with ``axis_name``), as TRL's
masked mean.

Log-probabilities come from ``token_logprobs`` / ``sequence_logprobs``, which read the
target token's log-softmax without materializing a ``[batch, time, vocab]`` copy.

Every function is finite for log-probabilities of ±1e4 and for masked entries holding
anything: masked entries are replaced before any exponential, so they get exactly zero
gradients.
"""

from jaxloss.preference.logprobs import sequence_logprobs as sequence_logprobs
from jaxloss.preference.logprobs import token_logprobs as token_logprobs
from jaxloss.preference.pairs import bradley_terry as bradley_terry
from jaxloss.preference.pairs import dpo as dpo
from jaxloss.preference.pairs import kto as kto
from jaxloss.preference.pairs import orpo as orpo
from jaxloss.preference.pairs import simpo as simpo
from jaxloss.preference.policy import grpo_advantages as grpo_advantages
from jaxloss.preference.policy import kl_penalty as kl_penalty
from jaxloss.preference.policy import ppo_clip as ppo_clip
