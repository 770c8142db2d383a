"""jaxloss: loss functions for JAX with the numbers of PyTorch and the papers.

Every loss is a pure function ``name(inputs..., *, options, where=None, reduction="mean")``
that works under ``jit``, ``vmap``, ``grad``, ``pmap`` and ``shard_map``. See the README and
each function's docstring for the conventions.
"""

from jaxloss._checked import checked as checked
from jaxloss._kernels.ctc import ctc as ctc
from jaxloss._kernels.ctc import ctc_greedy_decode as ctc_greedy_decode
from jaxloss.classification.softmax import binary_cross_entropy as binary_cross_entropy
from jaxloss.classification.softmax import (
    binary_cross_entropy_with_logits as binary_cross_entropy_with_logits,
)
from jaxloss.classification.softmax import cross_entropy as cross_entropy
from jaxloss.classification.softmax import nll as nll
from jaxloss.classification.softmax import sigmoid_focal as sigmoid_focal
from jaxloss.classification.softmax import softmax_focal as softmax_focal
from jaxloss.dense.style import chamfer as chamfer
from jaxloss.dense.style import dice as dice
from jaxloss.dense.style import gram_matrix as gram_matrix
from jaxloss.dense.style import perceptual_loss as perceptual_loss
from jaxloss.dense.style import style_loss as style_loss
from jaxloss.dense.style import tversky as tversky
from jaxloss.divergence.kl import gaussian_kl as gaussian_kl
from jaxloss.divergence.kl import kl_div as kl_div
from jaxloss.generative.gan import elbo_loss as elbo_loss
from jaxloss.generative.gan import gan_discriminator as gan_discriminator
from jaxloss.generative.gan import gan_generator as gan_generator
from jaxloss.generative.gan import gradient_penalty as gradient_penalty
from jaxloss.generative.gan import hinge_discriminator as hinge_discriminator
from jaxloss.generative.gan import hinge_generator as hinge_generator
from jaxloss.generative.gan import wasserstein_critic as wasserstein_critic
from jaxloss.generative.gan import wasserstein_generator as wasserstein_generator
from jaxloss.margin.heads import am_softmax as am_softmax
from jaxloss.margin.heads import arcface as arcface
from jaxloss.margin.heads import center_loss as center_loss
from jaxloss.margin.heads import center_update as center_update
from jaxloss.margin.heads import combined_margin as combined_margin
from jaxloss.margin.heads import cosface as cosface
from jaxloss.margin.heads import linear_cross_entropy as linear_cross_entropy
from jaxloss.margin.heads import norm_softmax as norm_softmax
from jaxloss.margin.heads import sphereface as sphereface
from jaxloss.pairwise.pairs import batch_triplet as batch_triplet
from jaxloss.pairwise.pairs import contrastive as contrastive
from jaxloss.pairwise.pairs import cosine_embedding as cosine_embedding
from jaxloss.pairwise.pairs import margin_ranking as margin_ranking
from jaxloss.pairwise.pairs import nt_xent as nt_xent
from jaxloss.pairwise.pairs import ratio_loss as ratio_loss
from jaxloss.pairwise.pairs import triplet_margin as triplet_margin
from jaxloss.preference.pairs import bradley_terry as bradley_terry
from jaxloss.preference.pairs import dpo as dpo
from jaxloss.preference.pairs import grpo_advantages as grpo_advantages
from jaxloss.preference.pairs import kl_penalty as kl_penalty
from jaxloss.preference.pairs import kto as kto
from jaxloss.preference.pairs import orpo as orpo
from jaxloss.preference.pairs import ppo_clip as ppo_clip
from jaxloss.preference.pairs import sequence_logprobs as sequence_logprobs
from jaxloss.preference.pairs import simpo as simpo
from jaxloss.preference.pairs import token_logprobs as token_logprobs
from jaxloss.regression.elementwise import huber as huber
from jaxloss.regression.elementwise import l1 as l1
from jaxloss.regression.elementwise import log_cosh as log_cosh
from jaxloss.regression.elementwise import mae as mae
from jaxloss.regression.elementwise import mse as mse
from jaxloss.regression.elementwise import smooth_l1 as smooth_l1

__version__ = "0.1.0"

__all__ = [
    "am_softmax",
    "arcface",
    "batch_triplet",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "bradley_terry",
    "center_loss",
    "center_update",
    "chamfer",
    "checked",
    "combined_margin",
    "contrastive",
    "cosface",
    "cosine_embedding",
    "cross_entropy",
    "ctc",
    "ctc_greedy_decode",
    "dice",
    "dpo",
    "elbo_loss",
    "gan_discriminator",
    "gan_generator",
    "gaussian_kl",
    "gradient_penalty",
    "gram_matrix",
    "grpo_advantages",
    "hinge_discriminator",
    "hinge_generator",
    "huber",
    "kl_div",
    "kl_penalty",
    "kto",
    "l1",
    "linear_cross_entropy",
    "log_cosh",
    "mae",
    "margin_ranking",
    "mse",
    "nll",
    "norm_softmax",
    "nt_xent",
    "orpo",
    "perceptual_loss",
    "ppo_clip",
    "ratio_loss",
    "sequence_logprobs",
    "sigmoid_focal",
    "simpo",
    "smooth_l1",
    "softmax_focal",
    "sphereface",
    "style_loss",
    "token_logprobs",
    "triplet_margin",
    "tversky",
    "wasserstein_critic",
    "wasserstein_generator",
]
