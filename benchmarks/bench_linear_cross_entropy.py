"""Benchmark the chunked large-vocabulary softmax: memory and time against materializing it.

What it measures, for value and gradient with respect to both the hidden states and the
weights (``jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))``):

* memory, from XLA's compiled memory analysis (``temp_size_in_bytes``, exact; compiled
  only, never run): ``jaxloss.linear_cross_entropy(h, w, y, chunk_size=1024)`` against the
  naive ``optax.softmax_cross_entropy_with_integer_labels(h @ w.T, y)`` at
  N=8192, D=1024, V=131072 (the acceptance of issue 4: at least 64x smaller), and
  ``jaxloss.arcface`` chunked against unchunked for a face-recognition head (512 x 512
  embeddings, 100,000 identities);
* time and memory at N=2048, D=512, V=32768: jaxloss with chunk_size=1024 (the row-blocked
  kernel, 512 rows at a time, three matmuls) and 512 (the class-blocked kernel, four
  matmuls) against the naive version and torch's ``F.linear_cross_entropy`` (CPU,
  float32, forward + backward), all in one process (``_harness.py``: round-robin,
  rotations forward and reversed, medians).

Run it from the repository root::

    .venv/bin/python benchmarks/bench_linear_cross_entropy.py           # about 2 minutes
    .venv/bin/python benchmarks/bench_linear_cross_entropy.py --quick   # small, in seconds
"""

from __future__ import annotations

import _harness
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss
from jaxloss.margin.linear import _rows_per_block


def naive(hidden: jax.Array, weight: jax.Array, labels: jax.Array) -> jax.Array:
    """The materialized [N, V] logits and optax's cross-entropy."""
    return optax.softmax_cross_entropy_with_integer_labels(hidden @ weight.T, labels).mean()


def chunked(chunk_size: int):
    """``jaxloss.linear_cross_entropy`` with ``chunk_size``."""

    def loss(hidden: jax.Array, weight: jax.Array, labels: jax.Array) -> jax.Array:
        return jaxloss.linear_cross_entropy(hidden, weight, labels, chunk_size=chunk_size)

    return loss


def temp_mib(loss, *shapes) -> float:
    """XLA's compiled temporary memory of value_and_grad(loss) for abstract inputs, in MiB."""
    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    return step.lower(*shapes).compile().memory_analysis().temp_size_in_bytes / _harness.MIB


def memory_table(n: int, d: int, v: int, chunk_size: int) -> None:
    shapes = (
        jax.ShapeDtypeStruct((n, d), jnp.float32),
        jax.ShapeDtypeStruct((v, d), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    ours, theirs = temp_mib(chunked(chunk_size), *shapes), temp_mib(naive, *shapes)
    print(f"linear cross-entropy, N={n}, D={d}, V={v}, value_and_grad (compiled, not run):")
    print("| version | temp MiB |")
    print("|---|---:|")
    print(f"| naive (h @ w.T, optax) | {theirs:.1f} |")
    print(f"| jaxloss chunk_size={chunk_size} | {ours:.1f} |")
    print(f"naive / jaxloss = {theirs / ours:.1f}x  (acceptance at 8192/1024/131072: >= 64x)")
    print()


def arcface_memory(batch: int, dim: int, classes: int, chunk_size: int) -> None:
    shapes = (
        jax.ShapeDtypeStruct((batch, dim), jnp.float32),
        jax.ShapeDtypeStruct((classes, dim), jnp.float32),
        jax.ShapeDtypeStruct((batch,), jnp.int32),
    )

    def head(chunk):
        return lambda x, w, y: jaxloss.arcface(x, w, y, chunk_size=chunk)

    whole, blocks = temp_mib(head(None), *shapes), temp_mib(head(chunk_size), *shapes)
    print(f"arcface, batch {batch}, dim {dim}, {classes} identities, value_and_grad:")
    print(
        f"unchunked {whole:.1f} MiB, chunk_size={chunk_size} {blocks:.1f} MiB "
        f"({whole / blocks:.1f}x smaller)"
    )
    print()


def _path(name: str, n: int, v: int) -> str:
    """Which jaxloss kernel a contender runs (``_rows_per_block``), for the table."""
    if not name.startswith("jaxloss"):
        return "-"
    rows = _rows_per_block(n, v, int(name.split()[-1]), "mean")
    return "class blocks" if rows is None else f"{rows}-row blocks"


def time_table(n: int, d: int, v: int, chunk_sizes: list[int], repeats: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hidden_np = (rng.standard_normal((n, d), dtype=np.float32) / 8).astype(np.float32)
    weight_np = (rng.standard_normal((v, d), dtype=np.float32) / 8).astype(np.float32)
    labels_np = rng.integers(0, v, size=n).astype(np.int32)
    args = (jnp.asarray(hidden_np), jnp.asarray(weight_np), jnp.asarray(labels_np))
    contenders, values, memory = {}, {}, {}
    losses = {"naive": naive} | {f"jaxloss chunk {c}": chunked(c) for c in chunk_sizes}
    for name, loss in losses.items():
        step = jax.value_and_grad(loss, argnums=(0, 1))
        run, (value, _), memory[name] = _harness.compile_jax(step, *args)
        contenders[name], values[name] = run, float(value)
    for name, value in values.items():
        np.testing.assert_allclose(value, values["naive"], rtol=1e-5, err_msg=name)
    torch = _harness.import_torch()
    if torch is not None:
        import torch.nn.functional as F

        hidden = torch.tensor(hidden_np, requires_grad=True)
        weight = torch.tensor(weight_np, requires_grad=True)
        labels = torch.tensor(labels_np, dtype=torch.int64)

        def run_torch():
            hidden.grad = weight.grad = None
            loss = F.linear_cross_entropy(hidden, weight, labels)
            loss.backward()
            return loss

        np.testing.assert_allclose(float(run_torch().detach()), values["naive"], rtol=1e-4)
        contenders["torch F.linear_cross_entropy"] = run_torch
    times = _harness.round_robin(contenders, repeats)
    medians = _harness.medians(times)
    print(f"linear cross-entropy, N={n}, D={d}, V={v}, value_and_grad, {repeats} rounds:")
    print("| version | kernel | temp MiB | median ms | / naive (paired) |")
    print("|---|---|---:|---:|---:|")
    for name, median in medians.items():
        ratio = _harness.paired_ratio(times, name, "naive")
        print(f"| {name} | {_path(name, n, v)} | {memory.get(name, float('nan')):.1f} ", end="")
        print(f"| {median:.1f} | {ratio:.3f} |")
    print("(acceptance at 2048/512/32768: jaxloss <= 1.15x naive)")


def main() -> None:
    """Parses the arguments and prints the memory and time tables."""
    args = _harness.parse_args(__doc__.splitlines()[0], repeats=11, quick_repeats=3)
    repeats = args.repeats
    print(_harness.describe_environment(), f"optax {optax.__version__}")
    print()
    if args.quick:
        memory_table(512, 64, 8192, 256)
        arcface_memory(64, 32, 10000, 1024)
        time_table(256, 64, 4096, [512, 128], repeats, args.seed)
    else:
        memory_table(8192, 1024, 131072, 1024)
        arcface_memory(512, 512, 100_000, 4096)
        time_table(2048, 512, 32768, [1024, 512], repeats, args.seed)


if __name__ == "__main__":
    main()
