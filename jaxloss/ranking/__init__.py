"""Learning-to-rank losses: lists of scored items against their relevance labels.

Shapes: ``scores`` and ``labels`` are ``[..., list_size]``, one list per leading index (the
last axis is the list, as optax and rax); the per-list loss (``reduction="none"``) has the
leading shape ``[...]``. Two masks: ``where`` masks whole lists (``[...]``, as every jaxloss
loss), ``item_mask`` masks items inside the lists (``[..., list_size]``: optax's and rax's
``where``, e.g. the padding of lists of different lengths). Masked lists and items may hold
anything, NaN included: they are zeroed before any arithmetic and get zero gradients.

``ranking_softmax`` is optax's ``ranking_softmax_loss``, its ``"mean"`` over the lists that
hold a valid item. The pairwise losses are rax's: each ordered pair of a list
(``labels[i] > labels[j]``) costs ``w_i · ℓ(s_i − s_j)``, and their ``"mean"`` is over the
pairs of the whole batch, as rax's default ``reduce_fn=jnp.mean``.
"""

from jaxloss.ranking.listwise import ranking_softmax as ranking_softmax
from jaxloss.ranking.pairwise import pairwise_hinge_ranking as pairwise_hinge_ranking
from jaxloss.ranking.pairwise import pairwise_logistic_ranking as pairwise_logistic_ranking
