"""Benchmark the blocked Chamfer distance: memory and time against the dense version.

What it measures, for value and gradient with respect to both clouds
(``jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))``), squared distances, mean over
points, both directions (PyTorch3D's defaults):

* memory, from XLA's compiled memory analysis (``temp_size_in_bytes``, exact; compiled
  only, never run) at B=4, N=M=16384, D=3: ``jaxloss.chamfer(x, y, chunk_size=1024)``
  against the naive dense version, which builds the [B, N, M] distance matrix and
  differentiates through its minima (the acceptance of issue 6: at least 64x smaller);
* time at B=2, N=4096, M=3000, D=3: jaxloss with chunk_size=1024 and with one block
  (``chunk_size=None``), the naive dense JAX version, and the same dense computation in
  torch (``torch.cdist``, CPU, float32), all in one process (``_harness.py``: round-robin,
  rotations forward and reversed, medians). jaxloss's values and gradients are checked
  against the naive ones before timing.

Run it from the repository root::

    .venv/bin/python benchmarks/bench_chamfer.py           # about a minute
    .venv/bin/python benchmarks/bench_chamfer.py --quick   # small, in seconds
"""

from __future__ import annotations

import _harness
import jax
import jax.numpy as jnp
import numpy as np

import jaxloss


def naive(x: jax.Array, y: jax.Array) -> jax.Array:
    """The dense [B, N, M] squared distances, their minima both ways, means over points."""
    d = jnp.sum(jnp.square(x[:, :, None] - y[:, None]), axis=-1)
    return jnp.mean(jnp.mean(d.min(axis=2), axis=1) + jnp.mean(d.min(axis=1), axis=1))


def chunked(chunk_size: int | None):
    """``jaxloss.chamfer`` with ``chunk_size``."""

    def loss(x: jax.Array, y: jax.Array) -> jax.Array:
        return jaxloss.chamfer(x, y, chunk_size=chunk_size)

    return loss


def value_and_grad(loss):
    return jax.value_and_grad(loss, argnums=(0, 1))


def temp_mib(loss, *shapes) -> float:
    """XLA's compiled temporary memory of value_and_grad(loss) for abstract inputs, in MiB."""
    compiled = jax.jit(value_and_grad(loss)).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes / _harness.MIB


def memory_table(batch: int, points: int, chunk_size: int) -> None:
    shape = jax.ShapeDtypeStruct((batch, points, 3), jnp.float32)
    ours, theirs = temp_mib(chunked(chunk_size), shape, shape), temp_mib(naive, shape, shape)
    print(f"chamfer, B={batch}, N=M={points}, D=3, value_and_grad (compiled, not run):")
    print("| version | temp MiB |")
    print("|---|---:|")
    print(f"| naive dense | {theirs:.1f} |")
    print(f"| jaxloss chunk_size={chunk_size} | {ours:.2f} |")
    print(f"naive / jaxloss = {theirs / ours:.0f}x  (acceptance at B=4, N=M=16384: >= 64x)")
    print()


def torch_contender(torch, x: np.ndarray, y: np.ndarray):
    """The dense computation in torch (forward and backward), as a zero-argument callable."""
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.tensor(y, requires_grad=True)

    def run():
        tx.grad = ty.grad = None
        d = torch.cdist(tx, ty).square()
        loss = (d.min(2).values.mean(1) + d.min(1).values.mean(1)).mean()
        loss.backward()
        return loss.item(), tx.grad, ty.grad

    return run


def time_table(batch: int, num_x: int, num_y: int, chunk_size: int, repeats: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, num_x, 3)).astype(np.float32)
    y = rng.normal(size=(batch, num_y, 3)).astype(np.float32)
    contenders, outputs, temps = {}, {}, {}
    versions = {
        "naive dense": naive,
        f"jaxloss chunk_size={chunk_size}": chunked(chunk_size),
        "jaxloss chunk_size=None": chunked(None),
    }
    for name, loss in versions.items():
        contenders[name], outputs[name], temps[name] = _harness.compile_jax(
            value_and_grad(loss), x, y
        )
    expected_value, expected_grads = outputs["naive dense"]
    for name, (value, grads) in outputs.items():
        np.testing.assert_allclose(value, expected_value, rtol=1e-5, err_msg=name)
        for g, e in zip(grads, expected_grads, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-8, err_msg=name)
    torch = _harness.import_torch()
    if torch is not None:
        contenders["torch dense (cdist)"] = torch_contender(torch, x, y)
        temps["torch dense (cdist)"] = float("nan")
        np.testing.assert_allclose(contenders["torch dense (cdist)"]()[0], expected_value, 1e-4)
    times = _harness.round_robin(contenders, repeats)
    median = _harness.medians(times)
    print(f"chamfer, B={batch}, N={num_x}, M={num_y}, D=3, value_and_grad, {repeats} rounds:")
    print("| version | temp MiB | median ms | time / naive |")
    print("|---|---:|---:|---:|")
    for name in contenders:
        ratio = _harness.paired_ratio(times, name, "naive dense")
        print(f"| {name} | {temps[name]:.1f} | {median[name]:.1f} | {ratio:.3f} |")
    print("(acceptance at B=2, N=4096, M=3000, chunk_size=1024: time / naive <= 1.5)")


def main() -> None:
    args = _harness.parse_args(__doc__.splitlines()[0], repeats=11, quick_repeats=3)
    print(_harness.describe_environment())
    print()
    if args.quick:
        memory_table(batch=2, points=4096, chunk_size=256)
        time_table(2, 1024, 768, 256, args.repeats, args.seed)
    else:
        memory_table(batch=4, points=16384, chunk_size=1024)
        time_table(2, 4096, 3000, 1024, args.repeats, args.seed)


if __name__ == "__main__":
    main()
