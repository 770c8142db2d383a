"""Each registry entry compiled once per input shape, shared by every suite that checks it.

Compilation is most of the suite's time (XLA on CPU: ~0.1-1 s per function), and one
function that returns everything costs little more to compile than one that returns a
single number (XLA shares the forward pass). So a suite never jits a loss itself: it asks
``probe(name)`` for the entry's values under every reduction and the gradients of the mean
and the sum, all from one compiled function per shape, dtype and kind of ``where`` (None
or an array), and checks as many properties as it likes on them. The conftest keeps all the
tests of an entry on one xdist worker, so the cache below is hit across modules.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tests._suite.registry import REGISTRY, call, where_shape


def with_differentiable(name: str, args: list, diff) -> list:
    """``args`` with the entry's differentiable positions replaced by ``diff``, in order."""
    full = list(args)
    for position, value in zip(REGISTRY[name].differentiable, diff, strict=True):
        full[position] = value
    return full


HALF = {"bfloat16": jnp.bfloat16, "float16": jnp.float16}

DEVICES = 8
"""The CPU devices of every process of the suite (``tests/conftest.py``)."""
BATCH = 24
"""The batch of every shared suite: one compiled shape serves them all, the 8-device test
(``test_multidevice.py``, 3 rows a device) included."""
KEEP = np.array(
    [
        [1, 1, 1],
        [1, 0, 1],
        [0, 0, 0],
        [0, 1, 0],
        [1, 1, 1],
        [0, 1, 1],
        [1, 1, 1],
        [1, 0, 0],
    ],
    bool,
).reshape(-1)
"""The rows a ``where`` keeps in the shared suites: on 8 devices, 3, 2, 0 (a device with
nothing valid), 1, 3, 2, 3 and 1 (per-device means differ from the global one); row 0 is
kept."""


@functools.cache
def _probe(name: str, all_slots: bool = True):
    """One compiled function per input shape computing every slot a suite asks for.

    Slots: float32 without ``where``, float32 with ``where`` (an array), each with every
    reduction and the gradients of the mean and the sum; and the inputs cast to bfloat16
    and to float16 without ``where``, with ``"none"``, the mean and its gradients (what the
    half-precision properties read). Compiling the four together costs about 2 times one
    slot, against 4 times for four functions. Compiled with the others (not alone, for
    ``float32_only``), the float32 slot leaves out the gradients of the sum, which no suite
    reads there (they are checked all masked and on an empty batch): a tenth of the
    compilation.
    """
    case = REGISTRY[name]
    argnums = tuple(range(len(case.differentiable)))

    def outputs(args: list, where: Any, reductions=("mean", "sum"), sum_gradients=True) -> dict:
        def loss(reduction: str):
            def at(*diff):
                full = with_differentiable(name, args, diff)
                return call(name, *full, where=where, reduction=reduction)

            return at

        diff = [args[i] for i in case.differentiable]
        out = {"none": loss("none")(*diff)}
        for reduction in reductions:
            if reduction == "sum" and not sum_gradients:
                out[reduction] = loss(reduction)(*diff)
                continue
            value, grads = jax.value_and_grad(loss(reduction), argnums=argnums)(*diff)
            out[reduction], out[f"grads_{reduction}"] = value, grads
        return out

    def run(args: list, where: Any) -> dict:
        def cast(dtype):
            return [a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a for a in args]

        slots = {"float32": outputs(args, None, sum_gradients=not all_slots)}
        if all_slots:
            slots["where"] = outputs(args, where)
            for key, dtype in HALF.items():
                slots[key] = outputs(cast(dtype), None, reductions=("mean",))
        return slots

    return jax.jit(run)


def _slot(args: list, where) -> str:
    dtypes = {str(a.dtype) for a in args if jnp.issubdtype(a.dtype, jnp.floating)}
    half = dtypes & set(HALF)
    if half:
        assert len(dtypes) == 1 and where is None, "half precision: one dtype, no where"
        return half.pop()
    return "float32" if where is None else "where"


def probe(name: str, args, where=None, *, float32_only: bool = False) -> dict:
    """``{"none", "mean", "sum", "grads_mean", "grads_sum"}`` of the entry, as NumPy.

    (Half-precision inputs: ``"none"``, ``"mean"`` and ``"grads_mean"``; float32 inputs
    without ``where``, unless ``float32_only``: no ``"grads_sum"``.)

    ``grads_*`` are tuples over the entry's differentiable inputs. Float32 inputs with or
    without ``where``, or half-precision inputs without it: one compilation per input shape
    serves them all (``_probe``). ``float32_only``: a shape used once, for float32 inputs
    without ``where``: compile that slot alone.
    """
    # NumPy in, always: jit caches a NumPy and a JAX array of the same shape and dtype as
    # two different signatures, and would compile the loss twice.
    args = [np.asarray(a) for a in args]
    slot = _slot(args, where)
    as_float32 = [
        a.astype(np.float32) if jnp.issubdtype(a.dtype, jnp.floating) else a for a in args
    ]
    if where is None:
        where = np.ones(where_shape(name, args), bool)
    assert not float32_only or slot == "float32"
    out = _probe(name, not float32_only)(as_float32, np.asarray(where))
    return jax.tree.map(np.asarray, out[slot])


@functools.cache
def checked(name: str):
    """``jaxloss.checked`` of the entry (``jax.jit``-ed inside), compiled once per shape."""
    import jaxloss

    fn = jaxloss.checked(lambda *args: call(name, *args))
    return lambda *args: fn(*(np.asarray(a) for a in args))


def compile_as_users(lowered: Any) -> Any:
    """``lowered.compile()`` as a user's program is compiled: with XLA's constant folding,
    which the suite turns off (``tests/conftest.py``). For the tests that read a program's
    HLO or memory."""
    return lowered.compile(compiler_options={"xla_disable_hlo_passes": ""})


def as_float64(args) -> list:
    """The inputs with every floating array in float64 (call inside ``enable_x64``)."""
    return [
        np.asarray(a, np.float64) if np.issubdtype(np.asarray(a).dtype, np.floating) else a
        for a in args
    ]


def upcast(args) -> list:
    """Half-precision inputs as float32 (the values a float32 loss would see), in NumPy (an
    eager cast in JAX compiles a program for each shape)."""
    return [
        np.asarray(a).astype(np.float32) if jnp.issubdtype(np.asarray(a).dtype, jnp.floating) else a
        for a in args
    ]


def reductions_and_grads(loss, argnums=0, reductions=("none", "sum", "mean")):
    """One compiled function for a family test: ``*args -> {reduction: (value, grads)}``.

    ``loss(*args, reduction=...)``; the gradients are those of the value's sum (the value
    itself for ``"mean"`` and ``"sum"``), with respect to ``argnums``. Every reduction in
    one compilation instead of one per reduction (or eager dispatch, op by op).
    """

    def run(*args):
        return {
            reduction: value_and_grads(
                functools.partial(loss, reduction=reduction), *args, argnums=argnums
            )
            for reduction in reductions
        }

    return jax.jit(run)


def value_and_grads(fn, *args, argnums=None):
    """Traceable: ``fn(*args)`` and the gradients of its sum (the value itself when it is a
    scalar) with respect to ``argnums`` (default: every argument), tracing ``fn`` once."""

    def total(*a):
        value = fn(*a)
        return jnp.sum(value), value

    if argnums is None:
        argnums = tuple(range(len(args)))
    (_, value), grads = jax.value_and_grad(total, argnums, has_aux=True)(*args)
    return value, grads


def values_and_grads_of_cases(fn, cases) -> list:
    """``value_and_grads`` of ``fn(*arrays, **options)`` for every ``(arrays, options)`` of
    ``cases``, with the arrays in float32, in one compilation; as NumPy.

    For a family test whose parametrized cases share their input shapes: a cached call
    computes them all, and each case checks its own entry.
    """
    inputs = [[np.asarray(a, np.float32) for a in arrays] for arrays, _ in cases]

    @jax.jit
    def run(inputs):
        return [
            value_and_grads(functools.partial(fn, **options), *arrays)
            for arrays, (_, options) in zip(inputs, cases, strict=True)
        ]

    return jax.tree.map(np.asarray, run(inputs))
