"""Feature-space losses of image generation: Gram matrices, style and perceptual losses.

``style_loss`` and ``perceptual_loss`` take lists of feature maps ``[batch, ..., channels]``
(one per layer of the caller's feature extractor) and return one value per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import cast

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName


def _layers(features: Sequence[ArrayLike] | ArrayLike, name: str) -> list[jax.Array]:
    """A list of float ``[batch, ..., channels]`` feature maps (a single array is one layer)."""
    # A list or tuple holds the layers; anything else is one array.
    layers = features if isinstance(features, (list, tuple)) else [cast(ArrayLike, features)]
    if not layers:
        raise ValueError(f"`{name}` must hold at least one feature map.")
    out = []
    for index, item in enumerate(layers):
        layer = _checks.float_array(item, f"{name}[{index}]")
        if layer.ndim < 2:
            raise ValueError(
                f"`{name}[{index}]` must be [batch, ..., channels], got shape {layer.shape}."
            )
        out.append(layer)
    return out


def _layer_weights(weights: Sequence[ArrayLike] | None, num_layers: int) -> list[ArrayLike]:
    if weights is None:
        return [1.0] * num_layers
    if len(weights) != num_layers:
        raise ValueError(
            f"`weights` needs one weight per layer ({num_layers}), got {len(weights)}."
        )
    for weight in weights:  # a negative weight would reward a layer's distance
        _checks.in_range(weight, "weights", low=0)
    return list(weights)


def _weighted_layer_sum(
    feature_maps: Sequence[ArrayLike] | ArrayLike,
    target_maps: Sequence[ArrayLike] | ArrayLike,
    weights: Sequence[ArrayLike] | None,
    where: ArrayLike | None,
    layer_target: Callable[[int, jax.Array, jax.Array, int], jax.Array],
    layer_loss: Callable[[jax.Array, jax.Array], jax.Array],
) -> tuple[jax.Array, jax.Array | None]:
    """``Σ_l w_l layer_loss(features[l], targets[l])``, one value per sample, and the
    ``[batch]`` mask to reduce it with.

    ``layer_target(l, features[l], targets[l], batch)`` validates a target and returns it
    with a leading axis of ``batch`` or 1 (one target for every sample).
    """
    features, targets = _layers(feature_maps, "features"), _layers(target_maps, "targets")
    if len(features) != len(targets):
        raise ValueError(
            f"`features` and `targets` need the same number of layers, got {len(features)} "
            f"and {len(targets)}."
        )
    batch = features[0].shape[0]
    weights = _layer_weights(weights, len(features))
    for index, feature in enumerate(features):
        if feature.shape[0] != batch:
            raise ValueError(
                f"Every layer of `features` needs the batch size {batch}; `features[{index}]` "
                f"has shape {feature.shape}."
            )
    targets = [
        layer_target(index, feature, target, batch)
        for index, (feature, target) in enumerate(zip(features, targets, strict=True))
    ]
    # A target of batch 1 serving several samples (one style image) cannot be zeroed for
    # some of them; a NaN there poisons every sample alike.
    per_sample = [index for index, target in enumerate(targets) if target.shape[0] == batch]
    mask, zeroed = masked_inputs(
        where, (batch,), *features, *(targets[index] for index in per_sample)
    )
    features = list(zeroed[: len(features)])
    for index, target in zip(per_sample, zeroed[len(features) :], strict=True):
        targets[index] = target
    terms = []
    for feature, target, weight in zip(features, targets, weights, strict=True):
        value = layer_loss(feature, target)
        terms.append(jnp.asarray(weight, value.dtype) * value)
    return sum(terms[1:], terms[0]), mask


def gram_matrix(features: ArrayLike) -> jax.Array:
    r"""Gram matrices of feature maps, averaged over positions.

    .. math::
      G_{b,c,c'} = \frac{1}{P} \sum_{i} F_{b,i,c} F_{b,i,c'}

    over the ``P`` positions ``i`` (pixels) of sample ``b``: the channels' correlations,
    which describe texture and style but not where things are (Gatys et al.). Dividing by
    ``P`` makes Gram matrices of images of different sizes comparable.

    Numerics: computed at full float32 matmul precision (``Precision.HIGHEST``) on every
    backend, and finite for finite features unless the sum of ``F_c F_c'`` over the ``P``
    positions passes the float32 maximum: the division by ``P`` comes after the sum.

    Args:
      features: ``[batch, ..., channels]`` feature maps (any number of spatial axes).

    Returns:
      ``[batch, channels, channels]`` float32 (float64 for float64 input).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> features = jnp.array([[[1.0, 2.0], [3.0, 0.0]]])  # one sample, 2 positions
      >>> jaxloss.gram_matrix(features)
      Array([[[5., 1.],
              [1., 2.]]], dtype=float32)
    """
    if isinstance(features, (list, tuple)):
        raise TypeError(
            "`gram_matrix` takes one array [batch, ..., channels]; map it over a list of layers."
        )
    (layer,) = _layers(features, "features")
    # Sizes spelled out: a ``-1`` cannot be inferred for an empty batch.
    flat = layer.reshape(layer.shape[0], math.prod(layer.shape[1:-1]), layer.shape[-1])
    gram = jnp.einsum("bpc,bpd->bcd", flat, flat, precision=_numerics.GRAM_PRECISION)
    return gram / flat.shape[1]


def style_loss(
    features: Sequence[ArrayLike] | ArrayLike,
    targets: Sequence[ArrayLike] | ArrayLike,
    *,
    weights: Sequence[ArrayLike] | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""The style loss of Gatys et al. (2016) over a list of layers.

    .. math::
      \ell_b = \sum_l w_l \frac{1}{4 C_l^2} \sum_{c,c'} (G^l_{b,c,c'} - A^l_{b,c,c'})^2

    with ``G`` and ``A`` the ``gram_matrix`` of the features and of the targets. Because
    ``gram_matrix`` averages over the ``P_l`` positions, this is exactly Gatys et al.'s
    ``E_l = Σ (G − A)² / (4 C_l² P_l²)`` on unnormalized Gram matrices. (Johnson et al.
    divide the Gram matrix by ``C·P`` instead: their loss is this one times ``4 / C_l²``.)

    The caller brings the feature extractor (a VGG, or any network): ``features[l]`` is its
    ``l``-th layer on the generated images and ``targets[l]`` on the style images. Targets
    may have another spatial size (Gram matrices do not depend on it) and a batch of 1 (one
    style image for every sample).

    Numerics: the loss grows as the fourth power of the features and nothing is clamped: it is
    +inf once ``(G − A)²`` passes the float32 maximum, i.e. for Gram entries differing by
    ~1.8e19 (features of magnitude ~4e9). Gram matrices use full float32 matmul precision.

    Args:
      features: a list of ``[batch, ..., channels_l]`` feature maps (or one array).
      targets: a list of the same length, each ``[batch or 1, ..., channels_l]``.
      weights: one weight ≥ 0 per layer (numbers or traced scalars); None: all 1.
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per sample, ``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-sample losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> f = jnp.ones((2, 4, 4, 3))
      >>> float(jaxloss.style_loss([f], [f]))
      0.0
      >>> float(jaxloss.style_loss([2 * f], [f]))  # G − A = 3 everywhere: 9 / 4
      2.25

    References:
      Gatys, Ecker and Bethge, "Image Style Transfer Using Convolutional Neural
      Networks", CVPR 2016.
    """

    def layer_target(index: int, feature: jax.Array, target: jax.Array, batch: int) -> jax.Array:
        if target.shape[-1] != feature.shape[-1] or target.shape[0] not in (1, batch):
            raise ValueError(
                f"`targets[{index}]` {target.shape} needs the channels of `features[{index}]` "
                f"{feature.shape} and its batch size (or 1)."
            )
        return target

    def layer_loss(feature: jax.Array, target: jax.Array) -> jax.Array:
        difference = gram_matrix(feature) - gram_matrix(target)
        return jnp.mean(jnp.square(difference), axis=(1, 2)) / 4

    loss, mask = _weighted_layer_sum(features, targets, weights, where, layer_target, layer_loss)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def perceptual_loss(
    features: Sequence[ArrayLike] | ArrayLike,
    targets: Sequence[ArrayLike] | ArrayLike,
    *,
    weights: Sequence[ArrayLike] | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Perceptual (feature reconstruction) loss of Johnson et al. (2016) over a list of layers.

    .. math::
      \ell_b = \sum_l w_l \frac{1}{C_l P_l} \| \phi_l(\hat y)_b - \phi_l(y)_b \|_2^2

    the mean squared difference of each layer's features over positions and channels:
    images that a network "sees" alike are close even when their pixels are not (a shifted
    or re-textured image). The caller's network gives ``features[l] = φ_l(ŷ)`` and
    ``targets[l] = φ_l(y)``.

    Numerics: finite for finite inputs, with nothing clamped, until a layer's sum of squared
    differences passes the float32 maximum (any difference beyond ~1.8e19 does).

    Args:
      features: a list of ``[batch, ..., channels_l]`` feature maps (or one array).
      targets: a list of the same length, each broadcastable to its feature map.
      weights: one weight ≥ 0 per layer (numbers or traced scalars); None: all 1.
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per sample, ``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-sample losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> f = jnp.zeros((1, 2, 2, 3))
      >>> layers, targets = [f, f[:, :1]], [f + 1, f[:, :1] + 2]  # differences 1 and 2
      >>> float(jaxloss.perceptual_loss(layers, targets, weights=[1.0, 0.5]))  # 1 + 0.5·4
      3.0

    References:
      Johnson, Alahi and Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
      Super-Resolution", ECCV 2016.
    """

    def layer_target(index: int, feature: jax.Array, target: jax.Array, batch: int) -> jax.Array:
        # Broadcast to the features, so every target has the batch axis and the padding of
        # masked samples can be zeroed whatever shape the caller gave.
        return _checks.broadcast_to(
            target, feature.shape, f"targets[{index}]", f"features[{index}]"
        ).astype(feature.dtype)

    def layer_loss(feature: jax.Array, target: jax.Array) -> jax.Array:
        squared = jnp.square(feature - target)
        return jnp.mean(squared.reshape(len(squared), math.prod(squared.shape[1:])), axis=1)

    loss, mask = _weighted_layer_sum(features, targets, weights, where, layer_target, layer_loss)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)
