"""Dense prediction and point sets: segmentation losses, image quality and regularizers,
Chamfer distance, style and perceptual losses.

Shapes:

* ``dice``, ``jaccard``, ``tversky`` and ``generalized_dice`` take channel-last
  probabilities (or logits) ``[batch, ..., num_classes]`` (any number of spatial axes) and
  targets of the same shape, or integer label maps ``[batch, ...]``; ``dice``, ``jaccard``
  and ``tversky`` return one value per (sample, class), ``[batch, num_classes]``,
  ``generalized_dice`` one per sample, ``[batch]``. ``dice_ce`` and ``dice_focal`` take
  logits and the same targets, and return one value per sample, ``[batch]``.
* ``lovasz_softmax`` takes the same probabilities (or logits) and integer label maps,
  ``lovasz_hinge`` binary logits ``[batch, ...]`` and 0/1 labels; per image, ``[batch]``
  (or the whole batch as one set of pixels with ``per_image=False``).
* ``boundary``, ``hausdorff_dt`` and ``soft_cldice`` take the inputs of ``dice``;
  ``boundary`` and ``hausdorff_dt`` return ``[batch, num_classes]``, ``soft_cldice``
  ``[batch]``. ``distance_transform`` maps masks ``[..., *spatial]`` to float32 distances of
  the same shape.
* ``ssim`` and ``ms_ssim`` take predicted and target images ``[batch, ..., channels]`` and
  return one value per sample, ``[batch]``.
* ``chamfer`` takes point clouds ``x`` ``[batch, num_x, dim]`` and ``y``
  ``[batch, num_y, dim]``, padded, with their lengths; one value per cloud pair, ``[batch]``.
* ``total_variation`` takes channel-last images ``[batch, ..., channels]`` (2-D, 3-D or any
  number of spatial axes), ``gradient_difference`` predicted and target images of one such
  shape; both return one value per sample, ``[batch]``.
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

from jaxloss.dense.compound import dice_ce as dice_ce
from jaxloss.dense.compound import dice_focal as dice_focal
from jaxloss.dense.distance import boundary as boundary
from jaxloss.dense.distance import distance_transform as distance_transform
from jaxloss.dense.distance import hausdorff_dt as hausdorff_dt
from jaxloss.dense.generalized import generalized_dice as generalized_dice
from jaxloss.dense.generalized import tversky as tversky
from jaxloss.dense.image import gradient_difference as gradient_difference
from jaxloss.dense.image import total_variation as total_variation
from jaxloss.dense.lovasz import lovasz_hinge as lovasz_hinge
from jaxloss.dense.lovasz import lovasz_softmax as lovasz_softmax
from jaxloss.dense.overlap import dice as dice
from jaxloss.dense.overlap import jaccard as jaccard
from jaxloss.dense.point_clouds import chamfer as chamfer
from jaxloss.dense.ssim import ms_ssim as ms_ssim
from jaxloss.dense.ssim import ssim as ssim
from jaxloss.dense.style import gram_matrix as gram_matrix
from jaxloss.dense.style import perceptual_loss as perceptual_loss
from jaxloss.dense.style import style_loss as style_loss
from jaxloss.dense.topology import soft_cldice as soft_cldice
