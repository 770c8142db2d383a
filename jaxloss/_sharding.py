"""Collectives: every sum, gather, offset and varying-axis type over mapped axes.

A loss given ``axis_name`` (the batch split over devices) or ``class_axis_name`` (the
classes split over devices) reaches the other devices only through these functions. Each
is the identity (or its one-device value) when the axis is None, so a loss is written once
for one device and many.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp

AxisName = str | Sequence[str] | None
"""A mapped axis of ``pmap``/``shard_map`` (or several), or None on one device."""

T = TypeVar("T")


def global_sum(x: T, axis_name: AxisName) -> T:
    """``x`` (an array or a pytree of arrays) summed over the devices of ``axis_name``."""
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def shard_offset(local_size: int, axis_name: AxisName) -> tuple[jax.Array, int]:
    """This device's first row in the global batch, and the global batch size.

    Devices hold equal blocks of ``local_size`` rows in the order of ``axis_index``, as
    ``pmap`` and ``shard_map`` split an array.
    """
    if axis_name is None:
        return jnp.asarray(0, jnp.int32), local_size
    return jax.lax.axis_index(axis_name) * local_size, local_size * jax.lax.axis_size(axis_name)


def gather_batch(x: jax.Array, axis_name: AxisName) -> tuple[jax.Array, jax.Array]:
    """The global batch (``x`` of every device, in device order) and this device's offset."""
    offset, _ = shard_offset(x.shape[0], axis_name)
    if axis_name is None or x.shape[0] == 0:
        # An empty batch gathers to an empty batch (XLA refuses a zero-size gather axis).
        return x, offset
    return jax.lax.all_gather(x, axis_name, axis=0, tiled=True), offset


def logsumexp_over_shards(local: jax.Array, axis_name: AxisName) -> jax.Array:
    """``log Σ_devices exp(local)``: per-device log-sum-exps of disjoint parts combined.

    Each device holds the log-sum-exp over its own share of the terms (its classes); the
    result is the log-sum-exp over all of them. The shift is the ``pmax`` of the
    (stop-gradient) maxima, floored so a device with no terms (``-inf``) cannot make it
    ``-inf``; the gradient flows through the ``psum`` alone.
    """
    if axis_name is None:
        return local
    floor = jnp.finfo(local.dtype).min
    top = jax.lax.pmax(jax.lax.stop_gradient(jnp.maximum(local, floor)), axis_name)
    return top + jnp.log(jax.lax.psum(jnp.exp(local - top), axis_name))


def _varying_axes(aval: Any) -> set[Any]:
    """The mapped axes an abstract value varies over (JAX >= 0.10 and the older ``vma``)."""
    manual = getattr(aval, "manual_axis_type", None)
    return set(manual.varying) if manual is not None else set(getattr(aval, "vma", ()))


def vary_like(init: T, *inputs: jax.Array | None) -> T:
    """``init`` (a fresh scan carry) made to vary over the mapped axes the inputs vary over.

    Inside ``shard_map`` a carry must keep one type through the scan: one computed from
    sharded inputs (a batch split over devices, class-sharded weights) varies over their
    axes, so its start must too. Outside ``shard_map`` it returns ``init`` unchanged.
    """
    axes: set[Any] = set()
    for array in inputs:
        if array is not None:
            axes |= _varying_axes(jax.typeof(array))

    def vary(leaf: jax.Array) -> jax.Array:
        # Only the axes a leaf does not vary over yet: pcast rejects varying to varying.
        missing = tuple(sorted(axes - _varying_axes(jax.typeof(leaf))))
        return jax.lax.pcast(leaf, missing, to="varying") if missing else leaf

    return jax.tree.map(vary, init) if axes else init


def sum_to(cotangent: jax.Array, primal: jax.Array) -> jax.Array:
    """A cotangent summed over the mapped axes it varies over and its primal does not.

    In a ``custom_vjp``, a replicated input (``x``) used by every class shard gets the sum
    of every shard's contribution: the transpose of the implicit broadcast that autodiff
    would insert.
    """
    extra = _varying_axes(jax.typeof(cotangent)) - _varying_axes(jax.typeof(primal))
    return jax.lax.psum(cotangent, tuple(sorted(extra))) if extra else cotangent
