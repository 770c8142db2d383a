"""Every loss family against optax, PyTorch and pytorch-metric-learning, in one run.

What it measures, for each case below: one value-and-gradient call (``jax.jit`` of
``jax.value_and_grad`` for the JAX sides; forward + ``backward()`` for torch), all
contenders on the same inputs in the same process, compiled and warmed up, then run
round-robin with a rotating start (``_harness.py``); medians over the rounds, and the
median of the per-round ratios *competitor / jaxloss* (above 1: jaxloss is faster). The JAX
sides also report XLA's compiled temporary memory (``memory_analysis()``, exact). Where two
contenders compute the same number, their values are checked equal before timing, so a
ratio never compares different work silently.

Then the scaling sweeps, each saved as a PNG: CTC time over T and over K, linear
cross-entropy memory and time over V, Chamfer memory over N, batch-hard triplet time over B.

Everything lands in ``RESULTS.md`` (machine, versions, date, tables, plots) in the output
folder: ``benchmarks/`` for a full run (the committed results), ``benchmarks/quick/``
(ignored by git) with ``--quick``. Device-agnostic: JAX measures its default backend, torch
runs on CUDA when it has it, else on the CPU; the report says which.

Run it from the repository root (``pip install -e ".[bench,examples]"`` has every
competitor and matplotlib)::

    .venv/bin/python benchmarks/run.py            # every family, full shapes and sweeps
    .venv/bin/python benchmarks/run.py --quick    # small shapes, 3 rounds: under 3 minutes
    .venv/bin/python benchmarks/run.py --only ctc margin   # some families
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import time
from collections.abc import Callable

import _harness
import bench_chamfer
import bench_ctc
import bench_linear_cross_entropy
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss

HERE = os.path.dirname(os.path.abspath(__file__))
PML = "pytorch-metric-learning"


@dataclasses.dataclass
class Case:
    """One benchmark: the same inputs for every contender.

    Attributes:
      family: the loss family (a section of RESULTS.md).
      label: what is computed, with its shapes.
      arrays: the NumPy inputs, shared by every contender.
      wrt: indices of the inputs the gradient is taken with respect to.
      jax: name -> ``fn(*arrays) -> scalar``; the first one is jaxloss, the baseline.
      torch: name -> ``make(torch) -> fn(*tensors) -> scalar tensor`` (tensors on the torch
        device, float inputs in ``wrt`` with ``requires_grad``, integers as int64).
      rtol: every contender's value must equal jaxloss's to this relative tolerance;
        ``None`` where they compute different numbers (then ``note`` says why).
      note: one line for the table.
    """

    family: str
    label: str
    arrays: list[np.ndarray]
    wrt: tuple[int, ...]
    jax: dict[str, Callable]
    torch: dict[str, Callable] = dataclasses.field(default_factory=dict)
    rtol: float | None = 1e-4
    note: str = ""


@dataclasses.dataclass
class Result:
    """A measured case: medians (ms), paired ratios to jaxloss, temp MiB, values."""

    case: Case
    median_ms: dict[str, float]
    ratio: dict[str, float]
    temp_mib: dict[str, float]
    value: dict[str, float]


def _torch_device(torch) -> str:
    """Where the torch contenders run: CUDA when torch has it, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


class Torch:
    """torch (and its device) when installed; contenders needing it are skipped otherwise."""

    def __init__(self) -> None:
        self.module = _harness.import_torch()
        self.pml = None
        if self.module is None:
            self.device = None
            return
        self.device = _torch_device(self.module)
        try:
            import pytorch_metric_learning

            self.pml = pytorch_metric_learning
        except ImportError:
            print(f"note: {PML} is not installed; skipping its rows.")

    def describe(self) -> str:
        if self.module is None:
            return "torch not installed"
        threads = self.module.get_num_threads()
        pml = f", {PML} {self.pml.__version__}" if self.pml else ""
        return f"torch {self.module.__version__} on {self.device} ({threads} threads){pml}"

    def step(self, make: Callable, arrays: list[np.ndarray], wrt: tuple[int, ...]):
        """A zero-argument forward + backward on ``arrays``, synchronized."""
        torch = self.module
        tensors = []
        for i, a in enumerate(arrays):
            if np.issubdtype(a.dtype, np.integer):
                tensors.append(torch.tensor(a, dtype=torch.int64, device=self.device))
            else:
                tensors.append(torch.tensor(a, device=self.device, requires_grad=i in wrt))
        fn = make(torch)

        def run():
            for i in wrt:
                tensors[i].grad = None
            loss = fn(*tensors)
            loss.backward()
            if self.device == "cuda":
                torch.cuda.synchronize()
            return loss

        return run


def measure(case: Case, tc: Torch, repeats: int) -> Result:
    """Compiles, checks the values agree, times round-robin; see the module docstring."""
    args = [jnp.asarray(a) for a in case.arrays]
    runs, temp, value = {}, {}, {}
    for name, fn in case.jax.items():
        step = jax.value_and_grad(fn, argnums=case.wrt)
        runs[name], (v, _), temp[name] = _harness.compile_jax(step, *args)
        value[name] = float(v)
    if tc.module is not None:
        for name, make in case.torch.items():
            if name.startswith(PML) and tc.pml is None:
                continue
            runs[name] = tc.step(make, case.arrays, case.wrt)
            value[name] = float(runs[name]().detach().cpu())
    baseline = next(iter(case.jax))
    if case.rtol is not None:
        for name, v in value.items():
            np.testing.assert_allclose(
                v, value[baseline], rtol=case.rtol, err_msg=f"{case.label}: {name}"
            )
    times = _harness.round_robin(runs, repeats)
    ratio = {name: _harness.paired_ratio(times, name, baseline) for name in runs}
    return Result(case, _harness.medians(times), ratio, temp, value)


# ----------------------------------------------------------------------------- the families


def _normal(rng, *shape, scale=1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def regression(quick: bool, rng) -> list[Case]:
    n = 1 << 14 if quick else 1 << 20
    p, t = _normal(rng, n), _normal(rng, n)
    shape = f"N={n}"
    return [
        Case(
            "regression",
            f"mse, {shape}",
            [p, t],
            (0,),
            {
                "jaxloss": jaxloss.mse,
                "optax": lambda p, t: optax.losses.squared_error(p, t).mean(),
            },
            {"torch": lambda torch: torch.nn.functional.mse_loss},
        ),
        Case(
            "regression",
            f"huber (delta=1), {shape}",
            [p, t],
            (0,),
            {
                "jaxloss": jaxloss.huber,
                "optax": lambda p, t: optax.losses.huber_loss(p, t, delta=1.0).mean(),
            },
            {"torch": lambda torch: torch.nn.functional.huber_loss},
        ),
        Case(
            "regression",
            f"log_cosh, {shape}",
            [p, t],
            (0,),
            {
                "jaxloss": jaxloss.log_cosh,
                "optax": lambda p, t: optax.losses.log_cosh(p, t).mean(),
            },
        ),
    ]


def classification(quick: bool, rng) -> list[Case]:
    b, c = (256, 100) if quick else (4096, 1000)
    logits, labels = _normal(rng, b, c, scale=2.0), rng.integers(0, c, b).astype(np.int32)
    n = 1 << 14 if quick else 1 << 20
    binary_logits = _normal(rng, n, scale=2.0)
    binary_targets = rng.integers(0, 2, n).astype(np.float32)

    def focal_torch(torch):
        # torchvision.ops.sigmoid_focal_loss's formula (torchvision has no CPU build here).
        def loss(x, t, alpha=0.25, gamma=2.0):
            p = torch.sigmoid(x)
            ce = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none")
            p_t = p * t + (1 - p) * (1 - t)
            return (ce * (1 - p_t) ** gamma * (alpha * t + (1 - alpha) * (1 - t))).mean()

        return loss

    return [
        Case(
            "classification",
            f"cross_entropy, B={b}, C={c}",
            [logits, labels],
            (0,),
            {
                "jaxloss": jaxloss.cross_entropy,
                "optax": lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y).mean(),
            },
            {"torch": lambda torch: torch.nn.functional.cross_entropy},
        ),
        Case(
            "classification",
            f"binary_cross_entropy_with_logits, N={n}",
            [binary_logits, binary_targets],
            (0,),
            {
                "jaxloss": jaxloss.binary_cross_entropy_with_logits,
                "optax": lambda z, t: optax.sigmoid_binary_cross_entropy(z, t).mean(),
            },
            {"torch": lambda torch: torch.nn.functional.binary_cross_entropy_with_logits},
        ),
        Case(
            "classification",
            f"sigmoid_focal (alpha=0.25, gamma=2), N={n}",
            [binary_logits, binary_targets],
            (0,),
            {
                "jaxloss": jaxloss.sigmoid_focal,
                "optax": lambda z, t: optax.losses.sigmoid_focal_loss(z, t, alpha=0.25).mean(),
            },
            {"torch (torchvision's formula)": focal_torch},
        ),
    ]


def divergence(quick: bool, rng) -> list[Case]:
    b, c = (256, 100) if quick else (4096, 1000)
    log_input = np.asarray(jax.nn.log_softmax(_normal(rng, b, c)))
    target = np.asarray(jax.nn.softmax(_normal(rng, b, c)))
    n, d = (256, 16) if quick else (16384, 64)
    mean, log_var = _normal(rng, n, d), _normal(rng, n, d, scale=0.5)

    def gaussian_kl_torch(torch):
        def loss(mu, lv):
            q = torch.distributions.Normal(mu, torch.exp(0.5 * lv))
            prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
            return torch.distributions.kl_divergence(q, prior).sum(-1).mean()

        return loss

    return [
        Case(
            "divergence",
            f"kl_div (batchmean), B={b}, C={c}",
            [log_input, target],
            (0,),
            {
                "jaxloss": lambda x, t: jaxloss.kl_div(x, t, reduction="batchmean"),
                "optax": lambda x, t: optax.losses.kl_divergence(x, t).mean(),
            },
            {
                "torch": lambda torch: (
                    lambda x, t: torch.nn.functional.kl_div(x, t, reduction="batchmean")
                )
            },
        ),
        Case(
            "divergence",
            f"gaussian_kl, B={n}, latent {d}",
            [mean, log_var],
            (0, 1),
            {"jaxloss": jaxloss.gaussian_kl},
            {"torch (distributions)": gaussian_kl_torch},
        ),
    ]


def ctc(quick: bool, rng) -> list[Case]:
    shape = bench_ctc.QUICK_SHAPES[0] if quick else (16, 200, 64, 40)
    return [_ctc_case(shape, int(rng.integers(1 << 31)))]


def _ctc_case(shape, seed: int) -> Case:
    inputs = bench_ctc.make_inputs(shape, seed)
    logit_paddings, label_paddings = bench_ctc.paddings(inputs)

    def ours(logits, labels, logit_lengths, label_lengths, *_):
        return jaxloss.ctc(
            logits,
            labels,
            logit_lengths=logit_lengths,
            label_lengths=label_lengths,
            reduction="sum",
        )

    def theirs(logits, labels, _, __, logit_paddings, label_paddings):
        return optax.ctc_loss(logits, logit_paddings, labels, label_paddings).sum()

    def torch_ctc(torch):
        def loss(logits, labels, logit_lengths, label_lengths, *_):
            log_probs = torch.log_softmax(logits, dim=-1).transpose(0, 1)
            return torch.nn.functional.ctc_loss(
                log_probs, labels, logit_lengths, label_lengths, reduction="sum"
            )

        return loss

    arrays = [inputs[k] for k in ("logits", "labels", "logit_lengths", "label_lengths")]
    return Case(
        "ctc",
        "ctc (sum), (B, T, K, S) = " + str(tuple(shape)),
        [*arrays, logit_paddings, label_paddings],
        (0,),
        {"jaxloss": ours, "optax": theirs},
        {"torch": torch_ctc},
    )


def margin(quick: bool, rng) -> list[Case]:
    b, d, c = (64, 32, 1000) if quick else (512, 128, 10000)
    embeddings, centers = _normal(rng, b, d), _normal(rng, c, d)
    labels = rng.integers(0, c, b).astype(np.int32)

    def pml_head(loss_name: str, **options):
        def make(torch):
            from pytorch_metric_learning import losses

            head = getattr(losses, loss_name)(num_classes=c, embedding_size=d, **options)
            head.W.data = torch.tensor(centers.T.copy())  # the same centers as jaxloss's
            head.to(_torch_device(torch))
            return lambda x, w, y: head(x, y)

        return make

    n, h, v = (256, 64, 4096) if quick else (2048, 512, 32768)
    hidden, weight = _normal(rng, n, h, scale=0.125), _normal(rng, v, h, scale=0.125)
    tokens = rng.integers(0, v, n).astype(np.int32)
    arc = f"B={b}, D={d}, C={c}"
    return [
        Case(
            "margin",
            f"arcface (s=64, m=0.5), {arc}",
            [embeddings, centers, labels],
            (0, 1),
            {"jaxloss": jaxloss.arcface},
            {f"{PML} ArcFaceLoss": pml_head("ArcFaceLoss", margin=np.degrees(0.5), scale=64)},
        ),
        Case(
            "margin",
            f"cosface (s=64, m=0.35), {arc}",
            [embeddings, centers, labels],
            (0, 1),
            {"jaxloss": jaxloss.cosface},
            {f"{PML} CosFaceLoss": pml_head("CosFaceLoss", margin=0.35, scale=64)},
        ),
        Case(
            "margin",
            f"linear_cross_entropy (chunk 1024), N={n}, D={h}, V={v}",
            [hidden, weight, tokens],
            (0, 1),
            {
                "jaxloss": bench_linear_cross_entropy.chunked(1024),
                "optax (materialized logits)": bench_linear_cross_entropy.naive,
            },
            {"torch": lambda torch: torch.nn.functional.linear_cross_entropy},
        ),
    ]


def pairs(quick: bool, rng) -> list[Case]:
    b, d, ids = (128, 32, 16) if quick else (1024, 128, 64)
    cases = [_batch_triplet_case(b, d, ids, rng)]
    p = 64 if quick else 256
    z1, z2 = _normal(rng, p, d), _normal(rng, p, d)
    view_labels = np.concatenate([np.arange(p), np.arange(p)]).astype(np.int32)

    def pml_ntxent(torch):
        from pytorch_metric_learning import losses

        loss, labels = losses.NTXentLoss(temperature=0.1), torch.tensor(view_labels)
        return lambda a, b: loss(torch.cat([a, b]), labels.to(a.device))

    cases.append(
        Case(
            "pairs",
            f"nt_xent (τ=0.1), 2 x {p} views, D={d}",
            [z1, z2],
            (0, 1),
            {
                "jaxloss": lambda a, b: jaxloss.nt_xent(a, b, temperature=0.1),
                "optax": lambda a, b: optax.losses.ntxent(
                    jnp.concatenate([a, b]), jnp.asarray(view_labels), 0.1
                ),
            },
            {f"{PML} NTXentLoss": pml_ntxent},
        )
    )
    t = 256 if quick else 8192
    a, pos, neg = (_normal(rng, t, d) for _ in range(3))
    cases.append(
        Case(
            "pairs",
            f"triplet_margin (margin 0.2), {t} triplets, D={d}",
            [a, pos, neg],
            (0, 1, 2),
            {
                "jaxloss": lambda a, p, n: jaxloss.triplet_margin(a, p, n, margin=0.2),
                "optax": lambda a, p, n: optax.losses.triplet_margin_loss(
                    a, p, n, margin=0.2
                ).mean(),
            },
            {
                "torch": lambda torch: (
                    lambda a, p, n: torch.nn.functional.triplet_margin_loss(a, p, n, margin=0.2)
                )
            },
        )
    )
    y = np.sign(rng.standard_normal(t)).astype(np.float32)
    cases.append(
        Case(
            "pairs",
            f"cosine_embedding (margin 0.2), {t} pairs, D={d}",
            [a, pos, y],
            (0, 1),
            {"jaxloss": lambda a, b, y: jaxloss.cosine_embedding(a, b, y, margin=0.2)},
            {
                "torch": lambda torch: (
                    lambda a, b, y: torch.nn.functional.cosine_embedding_loss(a, b, y, margin=0.2)
                )
            },
        )
    )
    n = 1 << 14 if quick else 1 << 20
    x1, x2 = _normal(rng, n), _normal(rng, n)
    ranking = np.sign(rng.standard_normal(n)).astype(np.float32)
    cases.append(
        Case(
            "pairs",
            f"margin_ranking (margin 0.1), N={n}",
            [x1, x2, ranking],
            (0, 1),
            {"jaxloss": lambda a, b, y: jaxloss.margin_ranking(a, b, y, margin=0.1)},
            {
                "torch": lambda torch: (
                    lambda a, b, y: torch.nn.functional.margin_ranking_loss(a, b, y, margin=0.1)
                )
            },
        )
    )
    return cases


def _batch_triplet_case(b: int, d: int, identities: int, rng) -> Case:
    """Batch-hard triplets (Hermans et al.) of B embeddings, identities of B / identities."""
    labels = np.repeat(np.arange(identities), b // identities).astype(np.int32)
    centers = rng.standard_normal((identities, d)) / np.sqrt(d)
    embeddings = (centers[labels] + rng.standard_normal((b, d)) / np.sqrt(d)).astype(np.float32)

    def pml_hard(torch):
        from pytorch_metric_learning import distances, losses, miners

        distance = distances.LpDistance(normalize_embeddings=False)
        loss = losses.TripletMarginLoss(margin=0.2, distance=distance)
        miner = miners.BatchHardMiner(distance=distance)
        return lambda x, y: loss(x, y, miner(x, y))

    return Case(
        "pairs",
        f"batch_triplet (hard, margin 0.2), B={b}, D={d}",
        [embeddings, labels],
        (0,),
        {"jaxloss": lambda x, y: jaxloss.batch_triplet(x, y, margin=0.2, mining="hard")},
        {f"{PML} TripletMarginLoss + BatchHardMiner": pml_hard},
        rtol=None,
        note=f"{PML} averages over the triplets with a nonzero loss; jaxloss over anchors",
    )


def dense(quick: bool, rng) -> list[Case]:
    b, hw, c = (2, 32, 4) if quick else (8, 128, 4)
    logits = _normal(rng, b, hw, hw, c)
    onehot = np.eye(c, dtype=np.float32)[rng.integers(0, c, (b, hw, hw))]

    def ours_dice(z, t):
        probs = jax.nn.softmax(z, axis=-1)
        # optax adds its `smooth` once to 2·intersection and once to the sum: 2s as ours.
        return jaxloss.dice(probs, t, smooth_nr=2.0, smooth_dr=2.0)

    def optax_dice(z, t):
        return optax.losses.dice_loss(z, t, smooth=1.0).mean()

    cb, cn, cm = (1, 512, 400) if quick else (2, 4096, 3000)
    x, y = _normal(rng, cb, cn, 3), _normal(rng, cb, cm, 3)

    def torch_chamfer(torch):
        def loss(x, y):
            d = torch.cdist(x, y).square()
            return (d.min(2).values.mean(1) + d.min(1).values.mean(1)).mean()

        return loss

    return [
        Case(
            "dense",
            f"dice (softmax probabilities), {b} x {hw}x{hw}, {c} classes",
            [logits, onehot],
            (0,),
            {"jaxloss": ours_dice, "optax": optax_dice},
        ),
        Case(
            "dense",
            f"chamfer (chunk 1024), B={cb}, N={cn}, M={cm}",
            [x, y],
            (0, 1),
            {
                "jaxloss": bench_chamfer.chunked(1024),
                "naive JAX (dense distances)": bench_chamfer.naive,
            },
            {"torch (cdist, dense)": torch_chamfer},
        ),
    ]


def generative(quick: bool, rng) -> list[Case]:
    n = 1 << 14 if quick else 1 << 20
    real, fake = _normal(rng, n), _normal(rng, n)

    def torch_gan(torch):
        bce = torch.nn.functional.binary_cross_entropy_with_logits

        def loss(r, f):
            return bce(r, torch.ones_like(r)) + bce(f, torch.zeros_like(f))

        return loss

    b, d, hidden = (128, 16, 64) if quick else (1024, 64, 256)
    w1, w2 = _normal(rng, d, hidden, scale=d**-0.5), _normal(rng, hidden, 1, scale=hidden**-0.5)
    x_real, x_fake = _normal(rng, b, d), _normal(rng, b, d)
    key = jax.random.key(0)

    def ours_gp(w1, w2, real, fake):
        def critic(x):
            return (jnp.tanh(x @ w1) @ w2)[:, 0]

        return jaxloss.gradient_penalty(critic, real, fake, key)

    def torch_gp(torch):
        def loss(w1, w2, real, fake):
            eps = torch.rand(real.shape[0], 1, device=real.device)
            mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
            scores = (torch.tanh(mixed @ w1) @ w2)[:, 0]
            (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
            return ((grad.norm(dim=1) - 1) ** 2).mean()

        return loss

    return [
        Case(
            "generative",
            f"gan_discriminator, N={n}",
            [real, fake],
            (0, 1),
            {"jaxloss": jaxloss.gan_discriminator},
            {"torch (BCE with logits)": torch_gan},
        ),
        Case(
            "generative",
            f"gradient_penalty, critic {d}-{hidden}-1, B={b} (gradient in the weights)",
            [w1, w2, x_real, x_fake],
            (0, 1),
            {"jaxloss": ours_gp},
            {"torch (autograd.grad, create_graph)": torch_gp},
            rtol=None,
            note="each side draws its own ε, so the values differ",
        ),
    ]


def preference(quick: bool, rng) -> list[Case]:
    n = 1 << 12 if quick else 1 << 18
    logps = [_normal(rng, n, scale=5.0) - 50 for _ in range(4)]

    def torch_dpo(torch):
        def loss(pc, pr, rc, rr):
            logits = (pc - pr) - (rc - rr)
            return -torch.nn.functional.logsigmoid(0.1 * logits).mean()

        return loss

    b, t, v = (2, 64, 4096) if quick else (4, 256, 32000)
    logits = _normal(rng, b, t, v, scale=2.0)
    tokens = rng.integers(0, v, (b, t)).astype(np.int32)

    def naive(z, y):
        logp = jax.nn.log_softmax(z, axis=-1)
        return jnp.take_along_axis(logp, y[..., None], axis=-1)[..., 0].sum(-1).sum()

    def torch_logps(torch):
        def loss(z, y):
            logp = torch.log_softmax(z, dim=-1)
            return logp.gather(-1, y[..., None])[..., 0].sum(-1).sum()

        return loss

    return [
        Case(
            "preference",
            f"dpo (sigmoid, β=0.1), {n} pairs",
            logps,
            (0, 1),
            {"jaxloss": jaxloss.dpo},
            {"torch (TRL's formula)": torch_dpo},
        ),
        Case(
            "preference",
            f"sequence_logprobs, B={b}, T={t}, V={v} (summed)",
            [logits, tokens],
            (0,),
            {
                "jaxloss": lambda z, y: jaxloss.sequence_logprobs(z, y).sum(),
                "naive JAX (log_softmax + gather)": naive,
            },
            {"torch (log_softmax + gather)": torch_logps},
        ),
    ]


FAMILIES = {
    "regression": regression,
    "classification": classification,
    "divergence": divergence,
    "ctc": ctc,
    "margin": margin,
    "pairs": pairs,
    "dense": dense,
    "generative": generative,
    "preference": preference,
}


# ---------------------------------------------------------------------------------- sweeps


def _compiled_temp_mib(fn, wrt, *shapes) -> float:
    compiled = jax.jit(jax.value_and_grad(fn, argnums=wrt)).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes / _harness.MIB


def _timed_sweep(xs, make_case, tc: Torch, repeats: int) -> dict[str, list[float]]:
    """Median ms of every contender of ``make_case(x)`` for each x."""
    series: dict[str, list[float]] = {}
    for x in xs:
        result = measure(make_case(x), tc, repeats)
        for name, ms in result.median_ms.items():
            series.setdefault(name, []).append(ms)
    return series


def sweeps(quick: bool, tc: Torch, repeats: int, seed: int) -> list[dict]:
    """Runs the scaling sweeps; each returns {title, x label, xs, y label, series, log}."""
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
                lambda t: _ctc_case((8, t, 32, t // 5), int(rng.integers(1 << 31))),
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
                lambda k: _ctc_case((8, 50, k, 10) if quick else (8, 200, k, 40), 1),
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
        hidden, weight = _normal(rng, tn, td, scale=0.125), _normal(rng, v, td, scale=0.125)
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

    sizes = [32, 64, 128] if quick else [128, 256, 512, 1024, 2048]
    out.append(
        {
            "name": "batch_triplet_B",
            "title": "batch-hard triplet value_and_grad over B (D=64, 8 images per identity)",
            "xlabel": "batch B",
            "ylabel": "median ms",
            "xs": sizes,
            "series": _timed_sweep(
                sizes, lambda b: _batch_triplet_case(b, 64, b // 8, rng), tc, repeats
            ),
        }
    )
    return out


def plot(sweep: dict, folder: str) -> str:
    """A log-log line plot of one sweep; returns the PNG's file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in sweep["series"].items():
        ax.plot(sweep["xs"], ys, marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(sweep["xlabel"])
    ax.set_ylabel(sweep["ylabel"])
    ax.set_title(sweep["title"], fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    name = f"{sweep['name']}.png"
    fig.savefig(os.path.join(folder, name), dpi=110, bbox_inches="tight")
    plt.close(fig)
    return name


# ---------------------------------------------------------------------------------- report


def _versions(tc: Torch) -> str:
    import jaxlib

    return (
        f"Python {platform.python_version()}, jax {jax.__version__} (jaxlib "
        f"{jaxlib.__version__}), optax {optax.__version__}, numpy {np.__version__}, "
        f"{tc.describe()}"
    )


def _machine() -> str:
    device = jax.devices()[0]
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores; JAX backend "
        f"{jax.default_backend()} ({jax.device_count()} x {device.device_kind})"
    )


def _fmt(x: float, digits: int = 2) -> str:
    return "—" if x is None or np.isnan(x) else f"{x:.{digits}f}"


def family_table(results: list[Result]) -> str:
    lines = [
        "| case | contender | median ms | contender / jaxloss (time) | temp MiB | value |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        for name, ms in r.median_ms.items():
            lines.append(
                f"| {r.case.label} | {name} | {_fmt(ms)} | {_fmt(r.ratio[name])} "
                f"| {_fmt(r.temp_mib.get(name, float('nan')), 1)} | {r.value[name]:.5g} |"
            )
    notes = [f"- {r.case.label}: {r.case.note}" for r in results if r.case.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def summary_table(results: list[Result]) -> str:
    """One row per case: each competitor's time ratio to jaxloss, and the memory ratio."""
    lines = [
        "| family | case | competitor / jaxloss, time (> 1: jaxloss faster) "
        "| temp memory, JAX competitor / jaxloss |",
        "|---|---|---|---|",
    ]
    for r in results:
        baseline = next(iter(r.case.jax))
        others = [n for n in r.median_ms if n != baseline]
        if not others:
            continue
        times = "; ".join(f"{n} {_fmt(r.ratio[n])}" for n in others)
        mem = "; ".join(
            f"{n} {_fmt(r.temp_mib[n] / r.temp_mib[baseline])}"
            for n in others
            if n in r.temp_mib and r.temp_mib[baseline] > 0
        )
        lines.append(f"| {r.case.family} | {r.case.label} | {times} | {mem or '—'} |")
    return "\n".join(lines)


def sweep_table(sweep: dict) -> str:
    names = list(sweep["series"])
    lines = [
        f"| {sweep['xlabel']} | " + " | ".join(f"{n} ({sweep['ylabel']})" for n in names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for i, x in enumerate(sweep["xs"]):
        lines.append(f"| {x} | " + " | ".join(_fmt(sweep["series"][n][i]) for n in names) + " |")
    return "\n".join(lines)


def write_results(folder, args, tc, results, sweep_list, plots, seconds) -> str:
    mode = "--quick (small shapes)" if args.quick else "full"
    parts = [
        "# Benchmark results",
        "",
        f"Written by `benchmarks/run.py` ({mode}, {args.repeats} round-robin rounds, seed "
        f"{args.seed}) on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, in "
        f"{seconds:.0f} s.",
        "",
        f"- Machine: {_machine()}.",
        f"- Versions: {_versions(tc)}.",
        "- Method: every contender compiled (JAX: `jit(value_and_grad)`) or built (torch: "
        "forward + `backward()`) and warmed up, then run round-robin with a rotating start "
        "in one process; medians; ratios are medians of per-round ratios. Temp memory is "
        "XLA's compiled `memory_analysis().temp_size_in_bytes` (exact; torch has none). "
        "Values are checked equal before timing unless a note says why not. Shared machines "
        "are noisy: read the ratios, not the absolute times.",
        "",
        "## Summary",
        "",
        summary_table(results),
    ]
    for family in dict.fromkeys(r.case.family for r in results):
        parts += [
            "",
            f"## {family}",
            "",
            family_table([r for r in results if r.case.family == family]),
        ]
    if sweep_list:
        parts += ["", "## Scaling sweeps"]
    for sweep, png in zip(sweep_list, plots, strict=True):
        parts += [
            "",
            f"### {sweep['title']}",
            "",
            f"![{sweep['name']}]({png})",
            "",
            sweep_table(sweep),
        ]
    path = os.path.join(folder, "RESULTS.md")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")
    return path


def main() -> None:
    """Parses the arguments, runs the families and sweeps, writes RESULTS.md and the plots."""

    def options(parser):
        parser.add_argument(
            "--only", nargs="+", choices=list(FAMILIES), help="run only these families"
        )
        parser.add_argument("--no-sweeps", action="store_true", help="skip the scaling sweeps")
        parser.add_argument(
            "--out", help="output folder (default benchmarks/, or benchmarks/quick/ with --quick)"
        )

    args = _harness.parse_args(__doc__.splitlines()[0], repeats=11, quick_repeats=3, extra=options)
    folder = args.out or (os.path.join(HERE, "quick") if args.quick else HERE)
    os.makedirs(folder, exist_ok=True)
    start = time.perf_counter()
    tc = Torch()
    print(_machine())
    print(_versions(tc))
    rng = np.random.default_rng(args.seed)
    results = []
    for family in args.only or FAMILIES:
        for case in FAMILIES[family](args.quick, rng):
            result = measure(case, tc, args.repeats)
            results.append(result)
            ratios = ", ".join(
                f"{n} {_fmt(r)}" for n, r in result.ratio.items() if n != next(iter(case.jax))
            )
            print(
                f"[{family}] {case.label}: {_fmt(result.median_ms[next(iter(case.jax))])} ms"
                f"{'; / jaxloss: ' + ratios if ratios else ''}",
                flush=True,
            )
    sweep_list = [] if args.no_sweeps else sweeps(args.quick, tc, args.repeats, args.seed)
    plots = [plot(s, folder) for s in sweep_list]
    path = write_results(folder, args, tc, results, sweep_list, plots, time.perf_counter() - start)
    print(f"\nwrote {path} and {len(plots)} plots in {time.perf_counter() - start:.0f} s")
    print(summary_table(results))


if __name__ == "__main__":
    main()
