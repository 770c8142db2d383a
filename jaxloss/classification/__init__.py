"""Classification losses: softmax cross-entropy, NLL, PolyLoss, binary cross-entropy, focal
losses, and the margin losses (torch's multi-class and multi-label margins, hinge, perceptron).

Shapes: ``logits`` (or ``log_probs``) have the class axis ``axis`` (last by default); integer
``labels`` have the logits' shape without that axis, which is also the per-example loss
shape (``reduction="none"``). Binary losses are per element: ``targets`` has the shape of
``logits``/``probs``.

Integer labels outside ``[0, num_classes)`` never wrap around (``take_along_axis`` would
clamp or wrap them silently): they are excluded exactly like ``ignore_index`` — loss 0, not
counted in the mean, zero gradient. PyTorch raises an error for them instead; torch's default
``ignore_index=-100`` is therefore excluded here with no option set.
"""

from jaxloss.classification.binary import binary_cross_entropy as binary_cross_entropy
from jaxloss.classification.binary import (
    binary_cross_entropy_with_logits as binary_cross_entropy_with_logits,
)
from jaxloss.classification.binary import hinge_embedding as hinge_embedding
from jaxloss.classification.binary import sigmoid_focal as sigmoid_focal
from jaxloss.classification.binary import soft_margin as soft_margin
from jaxloss.classification.labels import smooth_labels as smooth_labels
from jaxloss.classification.margins import multi_margin as multi_margin
from jaxloss.classification.margins import multilabel_margin as multilabel_margin
from jaxloss.classification.margins import multilabel_soft_margin as multilabel_soft_margin
from jaxloss.classification.perceptron import hinge as hinge
from jaxloss.classification.perceptron import multiclass_hinge as multiclass_hinge
from jaxloss.classification.perceptron import multiclass_perceptron as multiclass_perceptron
from jaxloss.classification.perceptron import perceptron as perceptron
from jaxloss.classification.poly import poly_cross_entropy as poly_cross_entropy
from jaxloss.classification.softmax import cross_entropy as cross_entropy
from jaxloss.classification.softmax import nll as nll
from jaxloss.classification.softmax import softmax_focal as softmax_focal
