"""jaxloss: loss functions for JAX with the numbers of PyTorch and the papers.

Every loss is a pure function ``name(inputs..., *, options, where=None, reduction="mean")``
that works under ``jit``, ``vmap``, ``grad``, ``pmap`` and ``shard_map``. See the README and
each function's docstring for the conventions.
"""

from jaxloss._checked import checked as checked
from jaxloss.classification import binary_cross_entropy as binary_cross_entropy
from jaxloss.classification import (
    binary_cross_entropy_with_logits as binary_cross_entropy_with_logits,
)
from jaxloss.classification import cross_entropy as cross_entropy
from jaxloss.classification import hinge as hinge
from jaxloss.classification import hinge_embedding as hinge_embedding
from jaxloss.classification import multi_margin as multi_margin
from jaxloss.classification import multiclass_hinge as multiclass_hinge
from jaxloss.classification import multiclass_perceptron as multiclass_perceptron
from jaxloss.classification import multilabel_margin as multilabel_margin
from jaxloss.classification import multilabel_soft_margin as multilabel_soft_margin
from jaxloss.classification import nll as nll
from jaxloss.classification import perceptron as perceptron
from jaxloss.classification import poly_cross_entropy as poly_cross_entropy
from jaxloss.classification import sigmoid_focal as sigmoid_focal
from jaxloss.classification import smooth_labels as smooth_labels
from jaxloss.classification import soft_margin as soft_margin
from jaxloss.classification import softmax_focal as softmax_focal
from jaxloss.dense import boundary as boundary
from jaxloss.dense import chamfer as chamfer
from jaxloss.dense import dice as dice
from jaxloss.dense import dice_ce as dice_ce
from jaxloss.dense import dice_focal as dice_focal
from jaxloss.dense import distance_transform as distance_transform
from jaxloss.dense import generalized_dice as generalized_dice
from jaxloss.dense import gradient_difference as gradient_difference
from jaxloss.dense import gram_matrix as gram_matrix
from jaxloss.dense import hausdorff_dt as hausdorff_dt
from jaxloss.dense import jaccard as jaccard
from jaxloss.dense import lovasz_hinge as lovasz_hinge
from jaxloss.dense import lovasz_softmax as lovasz_softmax
from jaxloss.dense import ms_ssim as ms_ssim
from jaxloss.dense import perceptual_loss as perceptual_loss
from jaxloss.dense import soft_cldice as soft_cldice
from jaxloss.dense import ssim as ssim
from jaxloss.dense import style_loss as style_loss
from jaxloss.dense import total_variation as total_variation
from jaxloss.dense import tversky as tversky
from jaxloss.divergence import gaussian_kl as gaussian_kl
from jaxloss.divergence import generalized_kl as generalized_kl
from jaxloss.divergence import kl_div as kl_div
from jaxloss.generative import elbo_loss as elbo_loss
from jaxloss.generative import gan_discriminator as gan_discriminator
from jaxloss.generative import gan_generator as gan_generator
from jaxloss.generative import gradient_penalty as gradient_penalty
from jaxloss.generative import hinge_discriminator as hinge_discriminator
from jaxloss.generative import hinge_generator as hinge_generator
from jaxloss.generative import wasserstein_critic as wasserstein_critic
from jaxloss.generative import wasserstein_generator as wasserstein_generator
from jaxloss.margin import adaface as adaface
from jaxloss.margin import adaface_update as adaface_update
from jaxloss.margin import am_softmax as am_softmax
from jaxloss.margin import arcface as arcface
from jaxloss.margin import center_loss as center_loss
from jaxloss.margin import center_update as center_update
from jaxloss.margin import combined_margin as combined_margin
from jaxloss.margin import cosface as cosface
from jaxloss.margin import curricularface as curricularface
from jaxloss.margin import curricularface_update as curricularface_update
from jaxloss.margin import elasticface as elasticface
from jaxloss.margin import linear_cross_entropy as linear_cross_entropy
from jaxloss.margin import magface as magface
from jaxloss.margin import norm_softmax as norm_softmax
from jaxloss.margin import proxy_anchor as proxy_anchor
from jaxloss.margin import proxy_nca as proxy_nca
from jaxloss.margin import soft_triple as soft_triple
from jaxloss.margin import sphereface as sphereface
from jaxloss.margin import subcenter_arcface as subcenter_arcface
from jaxloss.pairwise import batch_triplet as batch_triplet
from jaxloss.pairwise import circle as circle
from jaxloss.pairwise import contrastive as contrastive
from jaxloss.pairwise import cosine_distance as cosine_distance
from jaxloss.pairwise import cosine_embedding as cosine_embedding
from jaxloss.pairwise import cosine_similarity as cosine_similarity
from jaxloss.pairwise import fast_ap as fast_ap
from jaxloss.pairwise import info_nce as info_nce
from jaxloss.pairwise import lifted_structure as lifted_structure
from jaxloss.pairwise import margin_loss as margin_loss
from jaxloss.pairwise import margin_ranking as margin_ranking
from jaxloss.pairwise import multi_similarity as multi_similarity
from jaxloss.pairwise import n_pairs as n_pairs
from jaxloss.pairwise import nt_xent as nt_xent
from jaxloss.pairwise import ratio_loss as ratio_loss
from jaxloss.pairwise import supcon as supcon
from jaxloss.pairwise import triplet_margin as triplet_margin
from jaxloss.pairwise import triplet_margin_with_distance as triplet_margin_with_distance
from jaxloss.pairwise import tuplet_margin as tuplet_margin
from jaxloss.preference import bradley_terry as bradley_terry
from jaxloss.preference import distill_kl as distill_kl
from jaxloss.preference import dpo as dpo
from jaxloss.preference import generalized_jsd as generalized_jsd
from jaxloss.preference import grpo as grpo
from jaxloss.preference import grpo_advantages as grpo_advantages
from jaxloss.preference import kl_penalty as kl_penalty
from jaxloss.preference import kto as kto
from jaxloss.preference import linear_distill as linear_distill
from jaxloss.preference import linear_token_logprobs as linear_token_logprobs
from jaxloss.preference import orpo as orpo
from jaxloss.preference import ppo_clip as ppo_clip
from jaxloss.preference import sequence_logprobs as sequence_logprobs
from jaxloss.preference import simpo as simpo
from jaxloss.preference import skew_kl as skew_kl
from jaxloss.preference import token_logprobs as token_logprobs
from jaxloss.preference import tvd as tvd
from jaxloss.ranking import pairwise_hinge_ranking as pairwise_hinge_ranking
from jaxloss.ranking import pairwise_logistic_ranking as pairwise_logistic_ranking
from jaxloss.ranking import ranking_softmax as ranking_softmax
from jaxloss.regression import charbonnier as charbonnier
from jaxloss.regression import gaussian_nll as gaussian_nll
from jaxloss.regression import huber as huber
from jaxloss.regression import l1 as l1
from jaxloss.regression import log_cosh as log_cosh
from jaxloss.regression import mae as mae
from jaxloss.regression import mse as mse
from jaxloss.regression import poisson_nll as poisson_nll
from jaxloss.regression import smooth_l1 as smooth_l1
from jaxloss.sequence import ctc as ctc
from jaxloss.sequence import ctc_beam_search as ctc_beam_search
from jaxloss.sequence import ctc_forced_align as ctc_forced_align
from jaxloss.sequence import ctc_greedy_decode as ctc_greedy_decode
from jaxloss.sequence import ctc_with_forward_probs as ctc_with_forward_probs
from jaxloss.sequence import linear_rnnt as linear_rnnt
from jaxloss.sequence import rnnt as rnnt
from jaxloss.sequence import rnnt_beam_search as rnnt_beam_search
from jaxloss.sequence import rnnt_greedy_decode as rnnt_greedy_decode
from jaxloss.structured import fenchel_young as fenchel_young
from jaxloss.structured import multiclass_sparsemax_loss as multiclass_sparsemax_loss
from jaxloss.structured import sparsemax as sparsemax
from jaxloss.structured import sparsemax_loss as sparsemax_loss

__version__ = "0.2.0"

__all__ = [
    "adaface",
    "adaface_update",
    "am_softmax",
    "arcface",
    "batch_triplet",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "boundary",
    "bradley_terry",
    "center_loss",
    "center_update",
    "chamfer",
    "charbonnier",
    "checked",
    "circle",
    "combined_margin",
    "contrastive",
    "cosface",
    "cosine_distance",
    "cosine_embedding",
    "cosine_similarity",
    "cross_entropy",
    "ctc",
    "ctc_beam_search",
    "ctc_forced_align",
    "ctc_greedy_decode",
    "ctc_with_forward_probs",
    "curricularface",
    "curricularface_update",
    "dice",
    "dice_ce",
    "dice_focal",
    "distance_transform",
    "distill_kl",
    "dpo",
    "elasticface",
    "elbo_loss",
    "fast_ap",
    "fenchel_young",
    "gan_discriminator",
    "gan_generator",
    "gaussian_kl",
    "gaussian_nll",
    "generalized_dice",
    "generalized_jsd",
    "generalized_kl",
    "gradient_difference",
    "gradient_penalty",
    "gram_matrix",
    "grpo",
    "grpo_advantages",
    "hausdorff_dt",
    "hinge",
    "hinge_discriminator",
    "hinge_embedding",
    "hinge_generator",
    "huber",
    "info_nce",
    "jaccard",
    "kl_div",
    "kl_penalty",
    "kto",
    "l1",
    "lifted_structure",
    "linear_cross_entropy",
    "linear_distill",
    "linear_rnnt",
    "linear_token_logprobs",
    "log_cosh",
    "lovasz_hinge",
    "lovasz_softmax",
    "mae",
    "magface",
    "margin_loss",
    "margin_ranking",
    "ms_ssim",
    "mse",
    "multi_margin",
    "multi_similarity",
    "multiclass_hinge",
    "multiclass_perceptron",
    "multiclass_sparsemax_loss",
    "multilabel_margin",
    "multilabel_soft_margin",
    "n_pairs",
    "nll",
    "norm_softmax",
    "nt_xent",
    "orpo",
    "pairwise_hinge_ranking",
    "pairwise_logistic_ranking",
    "perceptron",
    "perceptual_loss",
    "poisson_nll",
    "poly_cross_entropy",
    "ppo_clip",
    "proxy_anchor",
    "proxy_nca",
    "ranking_softmax",
    "ratio_loss",
    "rnnt",
    "rnnt_beam_search",
    "rnnt_greedy_decode",
    "sequence_logprobs",
    "sigmoid_focal",
    "simpo",
    "skew_kl",
    "smooth_l1",
    "smooth_labels",
    "soft_cldice",
    "soft_margin",
    "soft_triple",
    "softmax_focal",
    "sparsemax",
    "sparsemax_loss",
    "sphereface",
    "ssim",
    "style_loss",
    "subcenter_arcface",
    "supcon",
    "token_logprobs",
    "total_variation",
    "triplet_margin",
    "triplet_margin_with_distance",
    "tuplet_margin",
    "tvd",
    "tversky",
    "wasserstein_critic",
    "wasserstein_generator",
]
