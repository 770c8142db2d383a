"""Pairs, triplets and contrastive losses: metric learning from relations between examples.

Shapes: embeddings are ``[..., dim]`` (the last axis is the feature axis); the per-example
loss (``reduction="none"``) has their leading shape, ``[batch]`` for a batch of pairs or
triplets. ``batch_triplet`` takes one ``[batch, dim]`` batch with integer ``labels``
``[batch]``, and so does ``nt_xent`` given ``labels`` (per anchor ``[batch]``); ``nt_xent``
of two views returns one value per pair ``[batch]``. ``cosine_similarity`` and
``cosine_distance`` are utilities (optax's), not losses.

Distances are safe at zero: ``‖x - y‖`` has a zero (not NaN) gradient where ``x = y``, so
identical embeddings, collapsed features at initialization and an anchor's distance to itself
never poison a step; cosines are finite, with finite gradients, at zero vectors.

``batch_triplet`` mines inside the ``[batch, batch]`` distance matrix with fixed shapes and
masks, so it runs under ``jit``; nothing of size ``batch³`` is ever built. Each anchor's
negative distances are sorted once; the semi-hard negative of a positive at distance ``d``
is then the first sorted value above ``d`` (a binary search), and the sum over every triplet
is a count and a prefix sum. With ``axis_name`` the mining and the mean run over the global
batch: every device's anchors see every device's embeddings (``all_gather``).
"""

from jaxloss.pairwise.batch import batch_triplet as batch_triplet
from jaxloss.pairwise.batch import nt_xent as nt_xent
from jaxloss.pairwise.cosine import cosine_distance as cosine_distance
from jaxloss.pairwise.cosine import cosine_similarity as cosine_similarity
from jaxloss.pairwise.fast_ap import fast_ap as fast_ap
from jaxloss.pairwise.margins import margin_loss as margin_loss
from jaxloss.pairwise.margins import tuplet_margin as tuplet_margin
from jaxloss.pairwise.pairs import contrastive as contrastive
from jaxloss.pairwise.pairs import cosine_embedding as cosine_embedding
from jaxloss.pairwise.pairs import margin_ranking as margin_ranking
from jaxloss.pairwise.pairs import ratio_loss as ratio_loss
from jaxloss.pairwise.supervised import info_nce as info_nce
from jaxloss.pairwise.supervised import n_pairs as n_pairs
from jaxloss.pairwise.supervised import supcon as supcon
from jaxloss.pairwise.triplets import triplet_margin as triplet_margin
from jaxloss.pairwise.triplets import (
    triplet_margin_with_distance as triplet_margin_with_distance,
)
from jaxloss.pairwise.weighted import circle as circle
from jaxloss.pairwise.weighted import lifted_structure as lifted_structure
from jaxloss.pairwise.weighted import multi_similarity as multi_similarity
