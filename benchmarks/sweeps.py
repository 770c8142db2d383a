"""The scaling sweeps of ``run.py``: how time or compiled memory grows with one dimension.

Each sweep returns ``{name, title, xlabel, ylabel, xs, series}``, ``series`` mapping each
contender to one value per x; ``report.py`` turns them into plots and tables. The memory
sweeps only compile (``memory_analysis()`` is exact and needs no run), so they reach shapes
that would take far longer to time.
"""

from __future__ import annotations

import bench_chamfer
import bench_linear_cross_entropy
import jax
import jax.numpy as jnp
import numpy as np
from _harness import MIB, Case, Torch, measure, normal
from cases import ctc, pairs, preference

import jaxloss


def _compiled_temp_mib(fn, wrt, *shapes) -> float:
    compiled = jax.jit(jax.value_and_grad(fn, argnums=wrt)).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes / MIB


def _timed_sweep(xs, make_case, tc: Torch, repeats: int) -> dict[str, list[float]]:
    """Median ms of every contender of ``make_case(x)`` for each x."""
    series: dict[str, list[float]] = {}
    for x in xs:
        result = measure(make_case(x), tc, repeats)
        for name, ms in result.median_ms.items():
            series.setdefault(name, []).append(ms)
    return series


def run(quick: bool, tc: Torch, repeats: int, seed: int) -> list[dict]:
    """Runs every sweep, in the order of RESULTS.md; see the module docstring."""
    rng = np.random.default_rng(seed)
    out = []

    frames = [25, 50, 100] if quick else [50, 100, 200, 400, 800]
    out.append(
        {
            "name": "ctc_T",
            "title": "CTC value_and_grad over T (B=8, K=32, S=T/5)",
            "xlabel": "frames T",
            "ylabel": "median ms",
            "xs": frames,
            "series": _timed_sweep(
                frames,
                lambda t: ctc.case((8, t, 32, t // 5), int(rng.integers(1 << 31))),
                tc,
                repeats,
            ),
        }
    )
    classes = [16, 64, 256] if quick else [16, 64, 256, 1024, 4096]
    out.append(
        {
            "name": "ctc_K",
            "title": "CTC value_and_grad over K (B=8, T=200, S=40)"
            if not quick
            else "CTC value_and_grad over K (B=8, T=50, S=10)",
            "xlabel": "classes K",
            "ylabel": "median ms",
            "xs": classes,
            "series": _timed_sweep(
                classes,
                lambda k: ctc.case((8, 50, k, 10) if quick else (8, 200, k, 40), 1),
                tc,
                repeats,
            ),
        }
    )

    vocab = [1024, 4096, 16384] if quick else [4096, 16384, 65536, 131072, 262144]
    n, d = (1024, 256) if quick else (8192, 1024)
    memory = {"jaxloss chunk 1024": [], "materialized logits (optax)": []}
    for v in vocab:
        shapes = (
            jax.ShapeDtypeStruct((n, d), jnp.float32),
            jax.ShapeDtypeStruct((v, d), jnp.float32),
            jax.ShapeDtypeStruct((n,), jnp.int32),
        )
        memory["jaxloss chunk 1024"].append(
            _compiled_temp_mib(bench_linear_cross_entropy.chunked(1024), (0, 1), *shapes)
        )
        memory["materialized logits (optax)"].append(
            _compiled_temp_mib(bench_linear_cross_entropy.naive, (0, 1), *shapes)
        )
    out.append(
        {
            "name": "linear_cross_entropy_V_memory",
            "title": f"linear cross-entropy temp memory over V (N={n}, D={d}, compiled only)",
            "xlabel": "vocabulary V",
            "ylabel": "XLA temp MiB",
            "xs": vocab,
            "series": memory,
        }
    )
    time_vocab = [1024, 4096, 16384] if quick else [4096, 16384, 65536]
    tn, td = (256, 64) if quick else (1024, 256)

    def lce_case(v):
        hidden, weight = normal(rng, tn, td, scale=0.125), normal(rng, v, td, scale=0.125)
        labels = rng.integers(0, v, tn).astype(np.int32)
        return Case(
            "margin",
            f"linear_cross_entropy V={v}",
            [hidden, weight, labels],
            (0, 1),
            {
                "jaxloss chunk 1024": bench_linear_cross_entropy.chunked(1024),
                "materialized logits (optax)": bench_linear_cross_entropy.naive,
            },
            {"torch": lambda torch: torch.nn.functional.linear_cross_entropy},
        )

    out.append(
        {
            "name": "linear_cross_entropy_V_time",
            "title": f"linear cross-entropy value_and_grad over V (N={tn}, D={td})",
            "xlabel": "vocabulary V",
            "ylabel": "median ms",
            "xs": time_vocab,
            "series": _timed_sweep(time_vocab, lce_case, tc, repeats),
        }
    )

    points = [1024, 4096, 16384] if quick else [1024, 4096, 16384, 65536]
    memory = {"jaxloss chunk 1024": [], "naive JAX (dense distances)": []}
    for p in points:
        shape = jax.ShapeDtypeStruct((1, p, 3), jnp.float32)
        memory["jaxloss chunk 1024"].append(
            _compiled_temp_mib(bench_chamfer.chunked(1024), (0, 1), shape, shape)
        )
        memory["naive JAX (dense distances)"].append(
            _compiled_temp_mib(bench_chamfer.naive, (0, 1), shape, shape)
        )
    out.append(
        {
            "name": "chamfer_N_memory",
            "title": "Chamfer temp memory over N = M (B=1, compiled only)",
            "xlabel": "points N",
            "ylabel": "XLA temp MiB",
            "xs": points,
            "series": memory,
        }
    )

    out.append(llm_head_memory(quick))

    sizes = [32, 64, 128] if quick else [128, 256, 512, 1024, 2048]
    out.append(
        {
            "name": "batch_triplet_B",
            "title": "batch-hard triplet value_and_grad over B (D=64, 8 images per identity)",
            "xlabel": "batch B",
            "ylabel": "median ms",
            "xs": sizes,
            "series": _timed_sweep(
                sizes, lambda b: pairs.batch_triplet_case(b, 64, b // 8, rng), tc, repeats
            ),
        }
    )
    return out


def llm_head_memory(quick: bool) -> dict:
    """Issue 24's memory shape: the hidden-state forms of token log-probabilities and of
    distillation against the materialized logits, value and the student's gradients."""
    vocab = [4096, 16384] if quick else [32768, 131072]
    n, d = (1024, 256) if quick else (8192, 1024)
    contenders = {
        "linear_token_logprobs chunk 1024": lambda h, w, y: jaxloss.linear_token_logprobs(
            h, w, y, chunk_size=1024
        ).sum(),
        "token_logprobs of the logits": lambda h, w, y: jaxloss.token_logprobs(h @ w.T, y).sum(),
        "linear_distill forward KL, chunk 128": preference.linear_distill(0.0, 128),
        "generalized_jsd(β=0) of the logits": preference.materialized_distill(0.0),
        "linear_distill JSD β=0.5, chunk 128": preference.linear_distill(0.5, 128),
        "generalized_jsd(β=0.5) of the logits": preference.materialized_distill(0.5),
    }
    series: dict[str, list[float]] = {name: [] for name in contenders}
    for v in vocab:
        hidden = jax.ShapeDtypeStruct((n, d), jnp.float32)
        weight = jax.ShapeDtypeStruct((v, d), jnp.float32)
        tokens = jax.ShapeDtypeStruct((n,), jnp.int32)
        for name, fn in contenders.items():
            shapes = (hidden, weight, tokens) if "logprobs" in name else (hidden, weight) * 2
            series[name].append(_compiled_temp_mib(fn, (0, 1), *shapes))
    return {
        "name": "llm_heads_V_memory",
        "title": f"LLM heads' temp memory over V (N={n}, D={d}, compiled only)",
        "xlabel": "vocabulary V",
        "ylabel": "XLA temp MiB",
        "xs": vocab,
        "series": series,
    }
