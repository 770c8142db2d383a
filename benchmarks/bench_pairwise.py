"""Benchmark metric-learning losses against pytorch-metric-learning, optax and torch.

What it measures, value and gradient with respect to the embeddings, all contenders in one
process (``_harness.py``: round-robin (``_harness.round_order``), medians, paired ratios), and
XLA's compiled temporary memory for the JAX sides:

* ``jaxloss.batch_triplet`` at B=1024, D=128 (64 identities of 16) for each mining mode,
  against pytorch-metric-learning's ``TripletMarginLoss`` with the matching miner: none
  (every triplet, the same "mean over positive triplets" as ``"all"``; the values are
  checked equal), ``BatchHardMiner`` (``"hard"``), and ``TripletMarginMiner("semihard")``
  (``"semihard"``; its semi-hard rule keeps every negative within the margin, where
  FaceNet/TF-Addons keep one per pair, so only the times compare). Euclidean distances,
  unnormalized embeddings, margin 0.2.
* ``jaxloss.nt_xent`` with 2 x 256 views of dimension 128 against ``optax.losses.ntxent``
  and pytorch-metric-learning's ``NTXentLoss`` (the three values are checked equal).
* ``jaxloss.triplet_margin`` on 8192 triplets of dimension 128 against
  ``optax.losses.triplet_margin_loss`` and ``torch.nn.functional.triplet_margin_loss``.

Run it from the repository root::

    .venv/bin/python benchmarks/bench_pairwise.py           # about 2 minutes
    .venv/bin/python benchmarks/bench_pairwise.py --quick   # small, in seconds
"""

from __future__ import annotations

from collections.abc import Callable

import _harness
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss

MARGIN = 0.2


def _pml():
    """pytorch-metric-learning (and torch), or None with a note if not installed."""
    torch = _harness.import_torch()
    if torch is None:
        return None
    try:
        import pytorch_metric_learning
    except ImportError:
        print("note: pytorch-metric-learning is not installed; skipping its rows.")
        return None
    return pytorch_metric_learning


def _torch_step(torch, fn: Callable, *arrays: np.ndarray) -> Callable[[], object]:
    """A zero-argument forward + backward of ``fn`` on float32 CPU tensors."""
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]

    def run():
        for t in tensors:
            t.grad = None
        loss = fn(*tensors)
        loss.backward()
        return loss

    return run


def _jax_contenders(losses: dict[str, Callable], args, argnums) -> tuple[dict, dict, dict]:
    """Compiled value_and_grad of each loss: (runs, temp MiB, values) by name."""
    contenders, memory, values = {}, {}, {}
    for name, fn in losses.items():
        step = jax.value_and_grad(fn, argnums=argnums)
        contenders[name], (value, _), memory[name] = _harness.compile_jax(step, *args)
        values[name] = float(value)
    return contenders, memory, values


def _measure(title: str, contenders, memory, values, repeats: int) -> None:
    """Times the contenders round-robin and prints the table, ratios to jaxloss."""
    times = _harness.round_robin(contenders, repeats)
    medians = _harness.medians(times)
    baseline = "jaxloss"
    print(title)
    print(f"| version | value | temp MiB | median ms | / {baseline} (paired) |")
    print("|---|---:|---:|---:|---:|")
    for name, median in medians.items():
        ratio = _harness.paired_ratio(times, name, baseline)
        mib = memory.get(name, float("nan"))
        print(f"| {name} | {values[name]:.5f} | {mib:.1f} | {median:.1f} | {ratio:.2f} |")
    print()


def batch_triplet_tables(batch: int, dim: int, identities: int, repeats: int, seed: int):
    rng = np.random.default_rng(seed)
    labels_np = np.repeat(np.arange(identities), batch // identities).astype(np.int32)
    centers = rng.normal(size=(identities, dim)) / np.sqrt(dim)
    embeddings_np = (centers[labels_np] + rng.normal(size=(batch, dim)) / np.sqrt(dim)).astype(
        np.float32
    )
    args = (jnp.asarray(embeddings_np), jnp.asarray(labels_np))
    pml = _pml()
    for mining in ("all", "hard", "semihard"):

        def ours(x, y, mining=mining):
            return jaxloss.batch_triplet(x, y, margin=MARGIN, mining=mining)

        contenders, memory, values = _jax_contenders({"jaxloss": ours}, args, 0)
        if pml is not None:
            import torch
            from pytorch_metric_learning import distances, losses, miners

            distance = distances.LpDistance(normalize_embeddings=False)
            loss_fn = losses.TripletMarginLoss(margin=MARGIN, distance=distance)
            miner = {
                "all": None,
                "hard": miners.BatchHardMiner(distance=distance),
                "semihard": miners.TripletMarginMiner(
                    margin=MARGIN, type_of_triplets="semihard", distance=distance
                ),
            }[mining]
            labels = torch.tensor(labels_np, dtype=torch.int64)

            def theirs(x, miner=miner, labels=labels, loss_fn=loss_fn):
                return loss_fn(x, labels, None if miner is None else miner(x, labels))

            name = "pytorch-metric-learning"
            contenders[name] = _torch_step(torch, theirs, embeddings_np)
            values[name] = float(contenders[name]().detach())
            if mining == "all":
                np.testing.assert_allclose(values["jaxloss"], values[name], rtol=1e-4)
        _measure(
            f"batch_triplet, mining={mining!r}, B={batch}, D={dim}, {identities} identities, "
            f"value_and_grad, {repeats} rounds:",
            contenders,
            memory,
            values,
            repeats,
        )


def nt_xent_table(pairs: int, dim: int, repeats: int, seed: int, temperature=0.1):
    rng = np.random.default_rng(seed)
    z1_np, z2_np = (rng.normal(size=(pairs, dim)).astype(np.float32) for _ in range(2))
    labels_np = np.concatenate([np.arange(pairs), np.arange(pairs)]).astype(np.int32)

    def ours(z1, z2):
        return jaxloss.nt_xent(z1, z2, temperature=temperature)

    def optax_ntxent(z1, z2):
        embeddings = jnp.concatenate([z1, z2])
        return optax.losses.ntxent(embeddings, jnp.asarray(labels_np), temperature)

    args = (jnp.asarray(z1_np), jnp.asarray(z2_np))
    contenders, memory, values = _jax_contenders(
        {"jaxloss": ours, "optax": optax_ntxent}, args, (0, 1)
    )
    np.testing.assert_allclose(values["jaxloss"], values["optax"], rtol=1e-4)
    pml = _pml()
    if pml is not None:
        import torch
        from pytorch_metric_learning import losses

        loss_fn = losses.NTXentLoss(temperature=temperature)
        labels = torch.tensor(labels_np, dtype=torch.int64)
        name = "pytorch-metric-learning"
        contenders[name] = _torch_step(
            torch, lambda a, b: loss_fn(torch.cat([a, b]), labels), z1_np, z2_np
        )
        values[name] = float(contenders[name]().detach())
        np.testing.assert_allclose(values["jaxloss"], values[name], rtol=1e-4)
    _measure(
        f"nt_xent, 2 x {pairs} views, D={dim}, value_and_grad, {repeats} rounds:",
        contenders,
        memory,
        values,
        repeats,
    )


def triplet_margin_table(batch: int, dim: int, repeats: int, seed: int):
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=(batch, dim)).astype(np.float32) for _ in range(3)]

    def ours(a, p, n):
        return jaxloss.triplet_margin(a, p, n, margin=MARGIN)

    def optax_triplet(a, p, n):
        return optax.losses.triplet_margin_loss(a, p, n, margin=MARGIN).mean()

    args = [jnp.asarray(a) for a in arrays]
    contenders, memory, values = _jax_contenders(
        {"jaxloss": ours, "optax": optax_triplet}, args, (0, 1, 2)
    )
    torch = _harness.import_torch()
    if torch is not None:
        import torch.nn.functional as F

        name = "torch"
        contenders[name] = _torch_step(
            torch, lambda a, p, n: F.triplet_margin_loss(a, p, n, margin=MARGIN), *arrays
        )
        values[name] = float(contenders[name]().detach())
        np.testing.assert_allclose(values["jaxloss"], values[name], rtol=1e-4)
    _measure(
        f"triplet_margin, {batch} triplets, D={dim}, value_and_grad, {repeats} rounds:",
        contenders,
        memory,
        values,
        repeats,
    )


def main() -> None:
    """Parses the arguments and prints the tables."""
    args = _harness.parse_args(__doc__.splitlines()[0], repeats=11, quick_repeats=3)
    print(_harness.describe_environment(), f"optax {optax.__version__}")
    print()
    if args.quick:
        batch_triplet_tables(128, 32, 16, args.repeats, args.seed)
        nt_xent_table(64, 32, args.repeats, args.seed)
        triplet_margin_table(256, 32, args.repeats, args.seed)
    else:
        batch_triplet_tables(1024, 128, 64, args.repeats, args.seed)
        nt_xent_table(256, 128, args.repeats, args.seed)
        triplet_margin_table(8192, 128, args.repeats, args.seed)


if __name__ == "__main__":
    main()
