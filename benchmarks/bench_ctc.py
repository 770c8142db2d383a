"""Benchmark the CTC loss, value and gradient under ``jit``, against optax and torch.

What it measures, per shape (B, T, K, S) = (batch, frames, classes, max label length): the
wall-clock time of one value-and-gradient call with respect to the logits of the summed
per-sequence CTC losses, for

* ``jaxloss.ctc(..., reduction="sum")`` under ``jax.jit(jax.value_and_grad(...))``;
* ``optax.ctc_loss(...).sum()``, jitted the same way;
* ``torch.nn.functional.ctc_loss(log_softmax(logits), ..., reduction="sum")`` with
  ``backward()`` (CPU, float32; skipped with a note if torch is missing).

Lengths are random (frames in [T/2, T], labels in [S/2, S]) and always alignable; labels
are random non-blank classes, so repeats occur. Methodology (``_harness.py``): compiled and
warmed up, round-robin (``_harness.round_order``), medians, all in one process. It also prints
XLA's compiled temporary memory of both JAX programs. The acceptance of issue 3: jaxloss at
least 1.5x faster than optax at every shape and 2x at the median, and no more temp memory.

Run it from the repository root::

    .venv/bin/python benchmarks/bench_ctc.py             # the four shapes of the issue
    .venv/bin/python benchmarks/bench_ctc.py --quick     # one small shape, in seconds
"""

from __future__ import annotations

import statistics

import _harness
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss

SHAPES = [(16, 100, 32, 20), (32, 200, 64, 40), (8, 1000, 30, 200), (16, 500, 1000, 100)]
QUICK_SHAPES = [(4, 50, 20, 10)]


def make_inputs(shape: tuple[int, int, int, int], seed: int) -> dict[str, np.ndarray]:
    """Random logits, labels (never the blank 0) and alignable lengths.

    Args:
      shape: ``(batch, frames, classes, max_label_length)``.
      seed: the random seed.

    Returns:
      NumPy arrays ``logits`` [B, T, K] float32, ``labels`` [B, S] int32,
      ``logit_lengths`` and ``label_lengths`` [B] int32.
    """
    batch, frames, classes, max_labels = shape
    rng = np.random.default_rng(seed)
    label_lengths = rng.integers(max_labels // 2, max_labels + 1, size=batch)
    # Enough frames for the labels and a blank between each repeat.
    logit_lengths = np.maximum(rng.integers(frames // 2, frames + 1, size=batch), 2 * max_labels)
    return {
        "logits": rng.standard_normal((batch, frames, classes), dtype=np.float32),
        "labels": rng.integers(1, classes, size=(batch, max_labels)).astype(np.int32),
        "logit_lengths": np.minimum(logit_lengths, frames).astype(np.int32),
        "label_lengths": label_lengths.astype(np.int32),
    }


def paddings(inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """optax's layout of the lengths: float32 ``(logit_paddings [B, T], label_paddings [B, S])``.

    1 marks a padded frame or label position.
    """
    frames, max_labels = inputs["logits"].shape[1], inputs["labels"].shape[1]
    logit = np.arange(frames)[None, :] >= inputs["logit_lengths"][:, None]
    label = np.arange(max_labels)[None, :] >= inputs["label_lengths"][:, None]
    return logit.astype(np.float32), label.astype(np.float32)


def jax_contenders(inputs: dict[str, np.ndarray]) -> dict[str, tuple]:
    """Compiled value-and-gradient calls of jaxloss and optax: name -> (run, value, temp MiB)."""
    labels = jnp.asarray(inputs["labels"])
    logit_lengths = jnp.asarray(inputs["logit_lengths"])
    label_lengths = jnp.asarray(inputs["label_lengths"])
    logit_paddings, label_paddings = (jnp.asarray(p) for p in paddings(inputs))

    def ours(logits: jax.Array) -> jax.Array:
        return jaxloss.ctc(
            logits,
            labels,
            logit_lengths=logit_lengths,
            label_lengths=label_lengths,
            reduction="sum",
        )

    def theirs(logits: jax.Array) -> jax.Array:
        return optax.ctc_loss(logits, logit_paddings, labels, label_paddings).sum()

    logits = jnp.asarray(inputs["logits"])
    result = {}
    for name, loss in (("jaxloss", ours), ("optax", theirs)):
        run, (value, _), temp = _harness.compile_jax(jax.value_and_grad(loss), logits)
        result[name] = (run, float(value), temp)
    return result


def torch_contender(torch, inputs: dict[str, np.ndarray]) -> tuple:
    """torch's forward + backward: (run, value)."""
    import torch.nn.functional as F

    logits = torch.tensor(inputs["logits"], requires_grad=True)
    labels = torch.tensor(inputs["labels"], dtype=torch.int64)
    logit_lengths = torch.tensor(inputs["logit_lengths"], dtype=torch.int64)
    label_lengths = torch.tensor(inputs["label_lengths"], dtype=torch.int64)

    def run() -> object:
        logits.grad = None
        log_probs = torch.log_softmax(logits, dim=-1).transpose(0, 1)
        loss = F.ctc_loss(log_probs, labels, logit_lengths, label_lengths, reduction="sum")
        loss.backward()
        return loss

    return run, float(run().detach())


def main() -> None:
    """Parses the arguments, runs every shape and prints the table."""
    args = _harness.parse_args(__doc__.splitlines()[0], repeats=21, quick_repeats=5)
    repeats = args.repeats

    torch = _harness.import_torch()
    print(f"CTC value_and_grad, sum reduction, {repeats} round-robin rounds")
    print(f"{_harness.describe_environment()}, optax {optax.__version__}", end="")
    print(f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else "")
    print()
    print(
        "| (B, T, K, S) | jaxloss ms | optax ms | torch ms | optax / jaxloss "
        "| torch / jaxloss | temp MiB jaxloss | temp MiB optax |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    speedups = []
    for shape in QUICK_SHAPES if args.quick else SHAPES:
        inputs = make_inputs(shape, args.seed)
        compiled = jax_contenders(inputs)
        np.testing.assert_allclose(compiled["jaxloss"][1], compiled["optax"][1], rtol=1e-4)
        contenders = {name: entry[0] for name, entry in compiled.items()}
        if torch is not None:
            run, value = torch_contender(torch, inputs)
            np.testing.assert_allclose(value, compiled["jaxloss"][1], rtol=1e-4)
            contenders["torch"] = run
        times = _harness.round_robin(contenders, repeats)
        med = _harness.medians(times)
        speedup = _harness.paired_ratio(times, "optax", "jaxloss")
        speedups.append(speedup)
        torch_ms = f"{med['torch']:.2f}" if "torch" in med else "—"
        torch_ratio = (
            f"{_harness.paired_ratio(times, 'torch', 'jaxloss'):.2f}" if "torch" in med else "—"
        )
        print(
            f"| {shape} | {med['jaxloss']:.2f} | {med['optax']:.2f} | {torch_ms} "
            f"| {speedup:.2f} | {torch_ratio} "
            f"| {compiled['jaxloss'][2]:.2f} | {compiled['optax'][2]:.2f} |"
        )
    print()
    print(
        f"optax / jaxloss (median of per-round ratios): min {min(speedups):.2f}, "
        f"median {statistics.median(speedups):.2f} (acceptance: >= 1.5 and >= 2)"
    )


if __name__ == "__main__":
    main()
