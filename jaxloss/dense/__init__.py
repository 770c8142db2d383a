"""Dense prediction and point sets: overlap losses, Chamfer distance, style and perceptual losses.

Shapes:

* ``dice``, ``tversky`` and ``generalized_dice`` take channel-last probabilities (or logits)
  ``[batch, ..., num_classes]`` (any number of spatial axes) and targets of the same shape,
  or integer label maps ``[batch, ...]``; ``dice`` and ``tversky`` return one value per
  (sample, class), ``[batch, num_classes]``, ``generalized_dice`` one per sample, ``[batch]``.
* ``chamfer`` takes point clouds ``x`` ``[batch, num_x, dim]`` and ``y``
  ``[batch, num_y, dim]``, padded, with their lengths; one value per cloud pair, ``[batch]``.
* ``gram_matrix`` maps feature maps ``[batch, ..., channels]`` to ``[batch, channels,
  channels]``; ``style_loss`` and ``perceptual_loss`` take lists of such feature maps (one per
  layer of the caller's feature extractor) and return one value per sample, ``[batch]``.

Overlap losses are ratios of sums over all pixels, so they do not care how rare a class is: a
tumour covering 0.1% of an image weighs as much as the background. Their ratios are defined
everywhere, including classes absent from both the prediction and the target.

``chamfer`` finds nearest neighbours in blocks of ``chunk_size`` points with a running
minimum, so the ``num_x × num_y`` distance matrix is never stored, and its gradient comes from
the nearest-neighbour indices alone (a ``custom_vjp``), so the backward pass costs
``O((num_x + num_y)·dim)``.
"""

from jaxloss.dense.overlap import dice as dice
from jaxloss.dense.overlap import generalized_dice as generalized_dice
from jaxloss.dense.overlap import tversky as tversky
from jaxloss.dense.point_clouds import chamfer as chamfer
from jaxloss.dense.style import gram_matrix as gram_matrix
from jaxloss.dense.style import perceptual_loss as perceptual_loss
from jaxloss.dense.style import style_loss as style_loss
