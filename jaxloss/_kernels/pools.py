"""Stride-1 windows of 3 along spatial axes (soft erosion and dilation), differentiated
through the pixel each window chose.

Notation: ``x`` ``[batch, *spatial, channels]``; a window holds a pixel and its two
neighbours along each pooled axis (a cross for several axes: the pixel and its ``2·d``
axis neighbours). A border pixel's missing neighbour repeats the pixel itself, which the
window holds anyway, so the border behaves as torch's ``max_pool`` with ``padding=1``
(whose −inf padding is never chosen).

Forward: one reduction over the window's shifted copies returns the extremum and which
copy holds it, and from that the flat index of the pixel holding it (a NaN wins, so it
propagates; a tie goes to the pixel itself, then to its neighbours before and after along
each axis in turn, as torch's pooling gives a tie to one pixel of its window).

Derivative (``jax.custom_jvp``): the tangent of the extremum is the tangent of the chosen
pixel, a gather by that index, and reverse mode transposes it into one scatter-add. The
rule gathers the value too (the chosen pixel itself), so a second derivative
differentiates gathers; the indices are constants of the derivative. A tie
therefore sends the whole derivative to one pixel (a subgradient), where autodiff of
``minimum``/``maximum`` splits it. Autodiff of the shifted copies gives the same numbers
away from ties but, chained (the skeleton's erosion, then dilation, then the next
erosion), XLA:CPU fuses each pool's transposed slices into the next one's loop and
recomputes the whole chain of comparisons there: two chained erosions' gradient took 7 to
15 times one's, the 4-step skeleton's gradient 60 times its value. The reduction and the
scatter are written out, so each pool's derivative costs one pass.

Memory: the ``int32`` indices of each pool, kept for the backward pass (``soft_cldice``
rematerializes each skeleton step instead).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# Flat indices are int32: a pooled array has fewer elements than this.
MAX_SIZE = 2**31 - 1


def _copies(x: jax.Array, axes: tuple[int, ...]) -> list[jax.Array]:
    """``x``, then ``x`` shifted by one pixel before and after along each of ``axes``, a
    border pixel repeating its own value where the neighbour would lie outside."""
    copies = [x]
    for axis in axes:
        n = x.shape[axis]
        first = lax.slice_in_dim(x, 0, 1, axis=axis)
        last = lax.slice_in_dim(x, n - 1, n, axis=axis)
        copies.append(jnp.concatenate([first, lax.slice_in_dim(x, 0, n - 1, axis=axis)], axis))
        copies.append(jnp.concatenate([lax.slice_in_dim(x, 1, n, axis=axis), last], axis))
    return copies


def _source(x: jax.Array, axes: tuple[int, ...], largest: bool) -> jax.Array:
    """The flat index (``int32``) of the pixel holding each window's extremum."""
    if x.size > MAX_SIZE:
        raise ValueError(f"Pooling takes at most {MAX_SIZE} elements, got {x.size}.")
    values = jnp.stack(_copies(x, axes), axis=-1)
    # Which copy holds the extremum: the pixel itself is copy 0, so a tie with its own
    # repeat at the border goes to the pixel, and a chosen neighbour always exists.
    copy = lax.broadcasted_iota(jnp.int8, values.shape, values.ndim - 1)

    def better(a: tuple, b: tuple) -> tuple[jax.Array, jax.Array]:
        (value_a, copy_a), (value_b, copy_b) = a, b
        nan_a, nan_b = jnp.isnan(value_a), jnp.isnan(value_b)
        beats = (value_a > value_b) if largest else (value_a < value_b)
        tie = (value_a == value_b) | (nan_a & nan_b)
        take_a = (nan_a & ~nan_b) | (~nan_a & ~nan_b & beats) | (tie & (copy_a < copy_b))
        return jnp.where(take_a, value_a, value_b), jnp.where(take_a, copy_a, copy_b)

    # The initial value loses to every element: the opposite infinity, and a copy number
    # past the last (a tie with an infinite element goes to the element).
    init = (jnp.array(-jnp.inf if largest else jnp.inf, x.dtype), jnp.int8(len(axes) * 2 + 1))
    _, chosen = lax.reduce((values, copy), init, better, (values.ndim - 1,))
    # Flat offsets of the copies: 0, then −stride and +stride of each axis.
    strides = [int(np.prod(x.shape[axis + 1 :])) for axis in axes]
    offsets = jnp.array([0, *(s * sign for s in strides for sign in (-1, 1))], jnp.int32)
    flat = lax.iota(jnp.int32, x.size).reshape(x.shape)
    return flat + offsets[chosen]


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def window_extremum(x: jax.Array, axes: tuple[int, ...], largest: bool) -> jax.Array:
    """The minimum (``largest=False``) or maximum of each pixel and its two neighbours along
    each of ``axes``, a border pixel's missing neighbour repeating the pixel."""
    # Undifferentiated (a target's skeleton), the extremum alone: elementwise, which XLA
    # also folds fast where the input is a constant (a closed-over target), where folding
    # the reduction below takes minutes.
    return functools.reduce(jnp.maximum if largest else jnp.minimum, _copies(x, axes))


@window_extremum.defjvp
def _window_extremum_jvp(
    axes: tuple[int, ...], largest: bool, primals: tuple, tangents: tuple
) -> tuple[jax.Array, jax.Array]:
    (x,), (dx,) = primals, tangents
    # The indices are constants of the derivative (and JAX cannot differentiate a reduction
    # with an integer operand): the value is the chosen pixel, gathered like its tangent, so
    # a second derivative differentiates the gathers.
    source = _source(lax.stop_gradient(x), axes, largest).reshape(-1)

    def pick(a: jax.Array) -> jax.Array:
        return a.reshape(-1).at[source].get(mode="promise_in_bounds").reshape(x.shape)

    return pick(x), pick(dx)
