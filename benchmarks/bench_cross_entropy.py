"""Benchmark softmax cross-entropy, forward + backward, against optax and torch.

What it measures: the wall-clock time of one forward + backward pass of the mean softmax
cross-entropy with integer labels, for

* ``jaxloss.cross_entropy`` as ``jax.jit(jax.value_and_grad(loss))``;
* ``optax.softmax_cross_entropy_with_integer_labels(...).mean()``, jitted the same way;
* ``torch.nn.functional.cross_entropy`` on float32 CPU tensors, ``loss.backward()``
  (optional: skipped with a note if torch is not installed).

Methodology: every contender is compiled and warmed up first; then the contenders are run
alternately, one call each per round (round-robin, the order cycling through every rotation
and its reverse: ``_harness.round_order``), for ``--repeats`` rounds, so that drifts in
machine load hit all of them alike.
The table reports medians and ratios to jaxloss; the acceptance criterion is
``jaxloss / optax <= 1.05``. It also prints the XLA temporary
buffer size of the two compiled JAX programs (``memory_analysis().temp_size_in_bytes``).

Run it from the repository root::

    .venv/bin/python benchmarks/bench_cross_entropy.py             # (4096, 32000) float32
    .venv/bin/python benchmarks/bench_cross_entropy.py --quick     # small, in seconds
    .venv/bin/python benchmarks/bench_cross_entropy.py --shape 1024 50257 --repeats 25
"""

from __future__ import annotations

from collections.abc import Callable

import _harness
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss


def jaxloss_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy with jaxloss.

    Args:
      logits: ``[N, V]`` float logits.
      labels: ``[N]`` integer class ids.

    Returns:
      The scalar mean loss.
    """
    return jaxloss.cross_entropy(logits, labels)


def optax_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy with optax.

    Args:
      logits: ``[N, V]`` float logits.
      labels: ``[N]`` integer class ids.

    Returns:
      The scalar mean loss.
    """
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def make_torch_step(
    logits_np: np.ndarray, labels_np: np.ndarray
) -> tuple[Callable[[], object], float] | None:
    """Builds the torch forward + backward callable, or returns None without torch.

    Args:
      logits_np: ``[N, V]`` float32 logits.
      labels_np: ``[N]`` integer class ids.

    Returns:
      ``(run, value)``: a zero-argument callable running one forward + backward pass and the
      loss value; or ``None`` if torch cannot be imported.
    """
    torch = _harness.import_torch()
    if torch is None:
        return None
    import torch.nn.functional as F

    logits = torch.tensor(logits_np, dtype=torch.float32, requires_grad=True)
    labels = torch.tensor(labels_np, dtype=torch.int64)

    def run() -> object:
        logits.grad = None
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        return loss

    value = float(run().detach())
    return run, value


def main() -> None:
    """Parses the arguments, runs the benchmark and prints the results."""

    def shape_option(parser):
        parser.add_argument(
            "--shape", nargs=2, type=int, metavar=("N", "V"), help="logits (default 4096 32000)"
        )

    args = _harness.parse_args(
        __doc__.splitlines()[0], repeats=15, quick_repeats=5, extra=shape_option
    )
    n, v = args.shape if args.shape else ((256, 1000) if args.quick else (4096, 32000))
    repeats = args.repeats

    rng = np.random.default_rng(args.seed)
    logits_np = rng.standard_normal((n, v), dtype=np.float32) * 3.0
    labels_np = rng.integers(0, v, size=(n,), dtype=np.int32)
    logits = jnp.asarray(logits_np)
    labels = jnp.asarray(labels_np)

    print(
        f"cross-entropy fwd+bwd, mean reduction, logits ({n}, {v}) float32, "
        f"{repeats} round-robin repeats"
    )
    print(f"{_harness.describe_environment()}, optax {optax.__version__}")

    # Compile and warm up every contender.
    step = {
        name: jax.value_and_grad(fn)
        for name, fn in (("jaxloss", jaxloss_loss), ("optax", optax_loss))
    }
    run_jl, (value_jl, _), mem_jl = _harness.compile_jax(step["jaxloss"], logits, labels)
    run_ox, (value_ox, _), mem_ox = _harness.compile_jax(step["optax"], logits, labels)
    np.testing.assert_allclose(value_jl, value_ox, rtol=1e-5)
    contenders: dict[str, Callable[[], object]] = {"jaxloss": run_jl, "optax": run_ox}

    torch_step = make_torch_step(logits_np, labels_np)
    if torch_step is not None:
        run_th, value_th = torch_step
        np.testing.assert_allclose(value_th, value_jl, rtol=1e-4)
        contenders["torch"] = run_th
        import torch

        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")

    times = _harness.round_robin(contenders, repeats)
    medians = _harness.medians(times)
    base = medians["jaxloss"]
    print()
    print("| contender | median ms | ratio to jaxloss |")
    print("|---|---:|---:|")
    for name, med in medians.items():
        print(f"| {name} | {med:.2f} | {med / base:.3f} |")
    print()
    print(
        f"jaxloss / optax = {base / medians['optax']:.3f}  "
        "(acceptance, at the default (4096, 32000): <= 1.05)"
    )
    paired = _harness.paired_ratio(times, "jaxloss", "optax")
    print(f"jaxloss / optax, median of per-round ratios = {paired:.3f}")
    print(f"optax / jaxloss = {medians['optax'] / base:.3f}")
    if "torch" in medians:
        print(f"torch / jaxloss = {medians['torch'] / base:.3f}")
    print()
    print("XLA compiled temp memory (memory_analysis().temp_size_in_bytes):")
    print(f"  jaxloss: {mem_jl:.2f} MiB")
    print(f"  optax:   {mem_ox:.2f} MiB")
    print(f"  (logits: {n * v * 4 / _harness.MIB:.2f} MiB)")


if __name__ == "__main__":
    main()
