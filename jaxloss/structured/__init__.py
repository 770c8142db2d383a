"""Fenchel–Young losses and sparsemax (Blondel et al. 2020; Martins & Astudillo 2016).

``sparsemax`` projects scores onto the probability simplex (exact zeros, unlike softmax);
``sparsemax_loss`` (binary, per element) and ``multiclass_sparsemax_loss`` (integer labels,
the logits' shape without the class axis) are its Fenchel–Young losses, and
``fenchel_young(max_fun)`` builds the loss of any regularized max, as optax's
``make_fenchel_young_loss``. Integer labels outside ``[0, num_classes)`` are excluded (loss
0, not counted, zero gradient), as in :func:`jaxloss.cross_entropy`.
"""

from jaxloss.structured.fenchel_young import fenchel_young as fenchel_young
from jaxloss.structured.sparsemax import multiclass_sparsemax_loss as multiclass_sparsemax_loss
from jaxloss.structured.sparsemax import sparsemax as sparsemax
from jaxloss.structured.sparsemax import sparsemax_loss as sparsemax_loss
