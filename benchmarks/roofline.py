"""The roofline of the elementwise and row-wise losses: how close jaxloss's fwd+bwd is to the
least work its formula needs on this machine.

Everything is measured in one process, at one size N (2^22 float32; ``--quick``: 2^18), in
one round-robin (``_harness.round_robin``: every kernel once per round, the order rotating
and reversing, so load drift hits all of them alike):

- Bandwidth: the triad ``a + s * b`` (``s`` a traced scalar) under ``jit``; it moves
  3 arrays x 4 B x N, so bandwidth = 12 N / median time. Its output is a new buffer per
  call, as every loss's gradient is; with the allocator held steady
  (``_harness.steady_allocator``) both reuse the pages of the call before.
- Transcendental costs: the throughput of each function XLA emits here (exp, log, log1p,
  expm1, tanh, logistic, sqrt, rsqrt, pow) when the arithmetic, not the memory, is the limit:
  ``sum(f(x + i / 64) for i in range(8))`` under ``jit`` (one loop, 8 evaluations per element
  read), against the same sum of ``x + i / 64``. Cost per evaluation = max(0, median over
  rounds of (t_f - t_identity)) / (8 N). (One ``f(x)`` against a copy ``x + 1``, the other
  column, hides the arithmetic behind the memory traffic it overlaps: ``exp`` then looks
  free, about 0.003 ns an element, though eight of them in one loop take 7x a copy's time.
  A loss with several transcendentals an element pays their throughput, and the bound takes
  the larger of the two halves, so counting the overlap again would understate it.)
- Each loss's *minimal* fwd+bwd work (``WORK``): the float32 words it must read and write per
  element (inputs read once, each gradient written once) and the transcendentals its value
  and gradient need together. Bound = max(bytes / bandwidth, sum of transcendental costs x N)
  (the two halves overlap in the best case, so the larger one binds). Divisions, compares and
  the final reduction are free in this model.
- jaxloss: ``jit(value_and_grad)`` of the loss, compiled with ``_harness.compile_jax``, timed
  in the same round-robin; fraction = bound / median time (1.0: at the roofline; ``within
  1.3x`` is issue 25's acceptance, fraction >= 1 / 1.3).

Nothing here is device-specific: on a GPU the same kernels measure the GPU (where per-call
launch overhead, included in every time alike, can dominate at these sizes).

``run.py`` runs this after the families unless ``--no-roofline`` and puts the tables, with the
peer ratios its run measured for the same losses, in RESULTS.md (``report.roofline_section``).
Alone, it prints the tables (and writes them to ``DIR/ROOFLINE.md`` with ``--out DIR``;
``ROOFLINE-gpu.md`` on a GPU)::

    .venv/bin/python benchmarks/roofline.py [--quick] [--out DIR]
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Callable

import _harness
import jax
import jax.numpy as jnp
import numpy as np
import report

import jaxloss

CLASSES = 1024
"""The row length of the row-wise losses (cross_entropy, kl_div, generalized_kl)."""

TRANSCENDENTALS: dict[str, Callable] = {
    "exp": jnp.exp,
    "log": jnp.log,
    "log1p": jnp.log1p,
    "expm1": jnp.expm1,
    "tanh": jnp.tanh,
    "logistic": jax.nn.sigmoid,
    "sqrt": jnp.sqrt,
    "rsqrt": jax.lax.rsqrt,
    "pow": lambda x: x**2.5,  # a non-integer constant exponent stays a pow
}

EVALUATIONS = 8
"""How many evaluations of a transcendental an element its throughput is measured with."""


def _eight(f: Callable) -> Callable:
    """``x -> Σ_i f(x + i / 64)`` over ``EVALUATIONS`` shifts: one XLA loop whose time is the
    arithmetic's (the shifts keep the evaluations distinct; ``x`` stays in [0.5, 2.2], inside
    every function's domain)."""
    return lambda x: sum(f(x + np.float32(i / 64)) for i in range(EVALUATIONS))


@dataclasses.dataclass(frozen=True)
class Work:
    """The minimal fwd+bwd work of one loss, per element of its inputs.

    Attributes:
      loss: the jaxloss function's name (also how run.py's case labels begin, for the peers).
      inputs: names of the arrays of ``inputs()`` it takes, in order.
      wrt: the argument indices the gradient is taken with respect to (as in its benchmark).
      words: 4-byte words read and written per element (``1 / CLASSES`` for a label per row).
      transcendentals: function name -> how many per element, value and gradient together.
      why: the formula the counts come from.
      kwargs: hyperparameters (its benchmark's).
    """

    loss: str
    inputs: tuple[str, ...]
    wrt: tuple[int, ...]
    words: float
    transcendentals: dict[str, float]
    why: str
    kwargs: dict = dataclasses.field(default_factory=dict)


# d = predictions - targets; x logits; t targets. "2 in, 1 out" = read 2 N floats, write the
# N-float gradient.
WORK = [
    Work("mse", ("x", "y"), (0,), 3, {}, "d², gradient 2d/N: 2 in, 1 out"),
    Work("mae", ("x", "y"), (0,), 3, {}, "|d|, gradient sign(d)/N: 2 in, 1 out"),
    Work("huber", ("x", "y"), (0,), 3, {}, "piecewise d²/2, δ|d|; gradient clip(d, ±δ)"),
    Work("smooth_l1", ("x", "y"), (0,), 3, {}, "huber / β: the same piecewise work"),
    Work(
        "log_cosh",
        ("x", "y"),
        (0,),
        3,
        {"exp": 1, "log1p": 1},
        "e = exp(-2|d|): value |d| + log1p(e) - log 2, gradient tanh d = sign(d)(1-e)/(1+e)",
    ),
    Work(
        "charbonnier",
        ("x", "y"),
        (0,),
        3,
        {"sqrt": 1},
        "s = sqrt(d² + ε²): value s (- ε), gradient d / s",
    ),
    Work(
        "poisson_nll",
        ("x", "counts"),
        (0,),
        3,
        {"exp": 1},
        "log input: value exp(x) - t x, gradient exp(x) - t (the same exp)",
    ),
    Work(
        "gaussian_nll",
        ("x", "y", "variances"),
        (0, 2),
        5,
        {"log": 1},
        "(log v + d²/v)/2; gradients d/v and (1/v - d²/v²)/2: 3 in, 2 out, one log",
    ),
    Work(
        "binary_cross_entropy",
        ("probs", "binary"),
        (0,),
        3,
        {"log": 1, "log1p": 1},
        "-(t log p + (1-t) log1p(-p)); gradient (p-t)/(p(1-p)) needs no log",
    ),
    Work(
        "binary_cross_entropy_with_logits",
        ("logits", "binary"),
        (0,),
        3,
        {"exp": 1, "log1p": 1},
        "e = exp(-|x|): value max(x,0) - xt + log1p(e), gradient σ(x) - t with σ from e",
    ),
    Work(
        "sigmoid_focal",
        ("logits", "binary"),
        (0,),
        3,
        {"exp": 1, "log1p": 1},
        "BCE's e = exp(-|x|) gives ce and p = σ(x); (1-p_t)^γ with constant γ = 2 is a product",
    ),
    Work(
        "hinge",
        ("logits", "signs"),
        (0,),
        3,
        {},
        "max(0, 1 - ts) for ±1 targets, gradient -t [ts < 1]: 2 in, 1 out",
    ),
    Work(
        "cross_entropy",
        ("scores", "labels"),
        (0,),
        2 + 1 / CLASSES,
        {"exp": 1, "log": 1 / CLASSES},
        "a row (4 KiB) stays in cache: read once, softmax - onehot written once; one exp per "
        "element, one log per row",
    ),
    Work(
        "kl_div",
        ("logprobs", "probs_rows"),
        (0,),
        3,
        {"log": 1},
        "t (log t - x): one log of the target; gradient -t/B needs none",
        {"reduction": "batchmean"},
    ),
    Work(
        "generalized_kl",
        ("logprobs", "measures"),
        (0,),
        3,
        {"exp": 1, "log": 1},
        "t log t - t x - t + exp(x); gradient exp(x) - t (the same exp)",
    ),
    Work(
        "dpo",
        ("logp0", "logp1", "logp2", "logp3"),
        (0, 1),
        6,
        {"exp": 1, "log1p": 1},
        "per pair: 4 in, 2 out; softplus(-βz) = max(-βz,0) + log1p(e), e = exp(-β|z|), "
        "gradient -β σ(-βz) from the same e",
    ),
]


def inputs(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The arrays the losses of ``WORK`` take, N elements each (rows of ``CLASSES``)."""
    rows = (n // CLASSES, CLASSES)
    normal = _harness.normal
    log_rows = np.asarray(jax.nn.log_softmax(normal(rng, *rows)))
    arrays = {
        "x": normal(rng, n),
        "y": normal(rng, n),
        "counts": rng.poisson(2.0, n).astype(np.float32),
        "variances": np.exp(normal(rng, n)),
        "probs": rng.uniform(0.01, 0.99, n).astype(np.float32),
        "logits": normal(rng, n, scale=2.0),
        "binary": rng.integers(0, 2, n).astype(np.float32),
        "scores": normal(rng, *rows, scale=2.0),
        "labels": rng.integers(0, CLASSES, rows[0]).astype(np.int32),
        "logprobs": log_rows,
        "probs_rows": np.asarray(jax.nn.softmax(normal(rng, *rows))),
        "measures": rng.uniform(0.0, 3.0, rows).astype(np.float32),
        **{f"logp{i}": normal(rng, n, scale=5.0) - 50 for i in range(4)},
    }
    arrays["signs"] = 2 * arrays["binary"] - 1  # ±1 targets (hinge)
    return arrays


@dataclasses.dataclass
class Row:
    """One loss's bound and measured time (ms)."""

    work: Work
    shape: tuple[int, ...]
    bytes_ms: float
    compute_ms: float
    jaxloss_ms: float

    @property
    def bound_ms(self) -> float:
        return max(self.bytes_ms, self.compute_ms)

    @property
    def binds(self) -> str:
        return "bandwidth" if self.bytes_ms >= self.compute_ms else "transcendentals"

    @property
    def fraction(self) -> float:
        return self.bound_ms / self.jaxloss_ms


@dataclasses.dataclass
class Roofline:
    """What ``run`` measured: N, the bandwidth, the transcendental costs, a row per loss."""

    n: int
    repeats: int
    triad_ms: float
    copy_ms: float
    function_ms: dict[str, float]
    alone_ns: dict[str, float]  # one evaluation an element, above a copy
    cost_ns: dict[str, float]  # throughput: eight evaluations an element, per evaluation
    rows: list[Row]

    @property
    def bandwidth_gbs(self) -> float:
        return 12 * self.n / (self.triad_ms * 1e-3) / 1e9


def run(quick: bool, repeats: int, seed: int = 0) -> Roofline:
    """Measures the bandwidth, the transcendentals and every loss of ``WORK`` together."""
    n = 1 << 18 if quick else 1 << 22
    rng = np.random.default_rng(seed)
    arrays = {name: jnp.asarray(a) for name, a in inputs(n, rng).items()}
    u = jnp.asarray(rng.uniform(0.5, 2.0, n).astype(np.float32))
    b = jnp.asarray(_harness.normal(rng, n))
    runs = {
        "triad": _harness.compile_jax(lambda a, s, b: a + s * b, u, jnp.float32(0.5), b)[0],
        "copy": _harness.compile_jax(lambda x: x + 1, u)[0],
        "identity x8": _harness.compile_jax(_eight(lambda x: x), u)[0],
    }
    for name, f in TRANSCENDENTALS.items():
        runs[name] = _harness.compile_jax(f, u)[0]
        runs[f"{name} x8"] = _harness.compile_jax(_eight(f), u)[0]
    for work in WORK:
        loss = getattr(jaxloss, work.loss)
        step = jax.value_and_grad(
            lambda *a, loss=loss, kw=work.kwargs: loss(*a, **kw), argnums=work.wrt
        )
        runs[work.loss] = _harness.compile_jax(step, *(arrays[i] for i in work.inputs))[0]
    times = _harness.round_robin(runs, repeats)
    ms = _harness.medians(times)

    def above(name: str, baseline: str) -> float:
        """Median over rounds of ``name``'s time above ``baseline``'s, in ms (>= 0)."""
        pairs = zip(times[name], times[baseline], strict=True)
        return max(0.0, statistics.median(f - c for f, c in pairs))

    alone_ns = {name: above(name, "copy") * 1e6 / n for name in TRANSCENDENTALS}
    cost_ns = {
        name: above(f"{name} x8", "identity x8") * 1e6 / (EVALUATIONS * n)
        for name in TRANSCENDENTALS
    }
    bytes_per_ms = 12 * n / ms["triad"]
    rows = [
        Row(
            work,
            arrays[work.inputs[0]].shape,
            4 * work.words * n / bytes_per_ms,
            sum(cost_ns[f] * count for f, count in work.transcendentals.items()) * n / 1e6,
            ms[work.loss],
        )
        for work in WORK
    ]
    return Roofline(
        n,
        repeats,
        ms["triad"],
        ms["copy"],
        {name: ms[name] for name in TRANSCENDENTALS},
        alone_ns,
        cost_ns,
        rows,
    )


def main() -> None:
    def options(parser):
        parser.add_argument(
            "--out", help="also write the tables to OUT/ROOFLINE.md (ROOFLINE-gpu.md on a GPU)"
        )

    args = _harness.parse_args(__doc__.splitlines()[0], repeats=21, quick_repeats=5, extra=options)
    print(report.machine())
    roof = run(args.quick, args.repeats, args.seed)
    section = report.roofline_section(roof)
    print(section)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, f"ROOFLINE{report.backend_suffix()}.md")
        with open(path, "w") as f:
            f.write(f"# Benchmark roofline\n\n- Machine: {report.machine()}.\n\n{section}\n")
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
