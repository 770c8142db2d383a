"""Glyph verification: do margin losses make embeddings that verify identities never seen?

What it shows: the claim behind face-recognition losses, tested where it can be. A phone
that unlocks by face must decide whether two photos show the same person although its
network never saw that person in training: it learned an *embedding* in which one
identity's images lie close together, and it was trained on thousands of identities so that
new ones look like old ones. Face datasets cannot be downloaded here, so characters stand in
for people: an identity is a character (Latin, Greek, Cyrillic, digits, arrows, math and
other symbols), a sample is that character drawn by one of the fonts on the machine
(matplotlib's DejaVu, STIX and Computer Modern, and the system's), warped, re-stroked and
noised at 32x32 (``_glyphs.py`` builds the set offline, deterministically, in about 20 s,
and caches it). About 1,900 identities train; 500 others are never seen until the test.

One small CNN (flax ``nnx``: 5x5/2, 3x3/2, 3x3/2 convolutions with 16, 32, 64 channels and
batch norm, then a 64-dimensional linear embedding with batch norm, as in ArcFace's networks)
per loss, all with the same batches (64 identities x 4 samples), the same adam steps and the
same learning-rate schedule:

* **softmax** (``jaxloss.cross_entropy``) on a linear classifier over the embedding.
* **NormFace** (``jaxloss.norm_softmax``): scaled cosines to trainable class centers.
* **CosFace**, **ArcFace**, **SphereFace** (``jaxloss.cosface``, ``arcface``,
  ``sphereface``): the true class must win by a margin on the cosine, the angle, or the
  multiplied angle.
* **CurricularFace**, **AdaFace**, **ElasticFace**
  (``jaxloss.compose.curricularface_with_state``, ``adaface_with_state``,
  ``jaxloss.elasticface``): ArcFace-style margins that reweight hard
  negatives as training goes on, adapt to the feature norm (image quality), or are drawn at
  random per sample.
* **triplet, batch-hard** (``jaxloss.batch_triplet``, ``mining="hard"``) and **supervised
  contrastive** (``jaxloss.supcon``): no class centers, only the batch's pairs.

Fair tuning: the normalized heads share scale 16 (64 is meant for tens of thousands of
identities) and each takes its paper's margin; every additive margin is warmed up linearly
from 0 over the first fifth of training (a common recipe for training them from scratch),
and SphereFace's λ is annealed from 1000 to 5 as in its paper, over the first 60% of the
steps. The heads' own parameters (the softmax classifier, the class centers) learn 10 times
faster than the network: in a run this short each identity is in one batch of 30, and its
center would otherwise barely move. The table lists every setting.

The metrics, on the unseen identities (each drawn by up to 5 fonts):

* **ROC AUC**: every pair of test samples is scored by the cosine of their embeddings;
  the probability that a same-identity pair scores above a different-identity pair.
* **TAR @ FAR**: the fraction of same-identity pairs accepted at the threshold that
  accepts 1e-3 (or 1e-2) of the different-identity pairs, the operating point of a lock.
* **one-shot accuracy**: enroll one random sample of each unseen identity; every other
  sample takes the identity of its most similar enrolled sample (mean over 20 galleries;
  chance is one in 500).

Baselines: the **raw pixels** (cosine of centered pixels) and the **untrained network**
(its random initialization): a loss has learned something that transfers only where it
beats both.

Outputs: ``glyph_verification.png`` (ROC curves, log false-accept axis; TAR at FAR = 1e-3
of every loss), ``glyph_verification_angles.png`` (angles between same- and different-
identity pairs of unseen identities, per loss: the picture of what a margin does),
``glyph_verification_neighbours.png`` (unseen samples and their nearest neighbours) and
``glyph_verification.md`` (the table).

Run it from the repository root::

    .venv/bin/python examples/glyph_verification.py            # 3 seeds, 140 steps each
    .venv/bin/python examples/glyph_verification.py --quick    # 1 seed, 30 steps, 200 unseen (CI)
    .venv/bin/python examples/glyph_verification.py --steps 700 --seeds 1 \
        --losses "softmax,NormFace,CosFace,ArcFace,supervised contrastive"  # a longer budget
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import markdown_table, parse_args, report, save_figure
from _glyphs import glyphs
from _verification import (
    Recipe,
    batch_hard_triplet,
    draw_galleries,
    evaluate,
    mean_std,
    pk_batches,
    roc_axes,
    stateless,
)
from flax import nnx
from tqdm.auto import tqdm

import jaxloss
from jaxloss import compose

EMBEDDING = 64
IDENTITIES_PER_BATCH = 64
PER_IDENTITY = 4  # P x K batches: 64 identities x 4 samples
LEARNING_RATE = 3e-3
SCALE = 16.0  # every normalized head's scale (64 is for tens of thousands of identities)
HEAD_LEARNING_RATE = 10.0  # times the network's: classifiers and class centers
WARMUP = 0.2  # margins grow linearly from 0 over this fraction of the steps
FARS = (1e-3, 1e-2)
GALLERY_DRAWS = 20
QUICK_UNSEEN = 200  # unseen identities scored by --quick
SUPCON_TEMPERATURE = 0.1  # Khosla et al.'s


class Embedder(nnx.Module):
    """32x32 grey image -> 64-dimensional embedding: three strided convolutions, a linear
    layer, batch normalization after each (the embedding's as in ArcFace's networks: it
    centers the features, so that cosines spread out from the first step)."""

    def __init__(self, rngs: nnx.Rngs):
        widths = (1, 16, 32, 64)
        self.convs = nnx.List(
            [
                nnx.Conv(n_in, n_out, (k, k), strides=2, rngs=rngs)
                for n_in, n_out, k in zip(widths[:-1], widths[1:], (5, 3, 3), strict=True)
            ]
        )
        self.norms = nnx.List([nnx.BatchNorm(n, momentum=0.9, rngs=rngs) for n in widths[1:]])
        self.embed = nnx.Linear(4 * 4 * widths[-1], EMBEDDING, rngs=rngs)
        self.embed_norm = nnx.BatchNorm(EMBEDDING, momentum=0.9, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        x = images[..., None].astype(jnp.float32) / 255.0 - 0.5
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = jax.nn.relu(norm(conv(x)))
        return self.embed_norm(self.embed(x.reshape(*x.shape[:-3], -1)))


def recipes(num_classes: int, steps: int) -> dict[str, Recipe]:
    """Every loss, its head and its schedules, for ``num_classes`` training identities."""
    warm_steps = max(1.0, WARMUP * steps)

    def warm(margin: float, step: jax.Array) -> jax.Array:
        return margin * jnp.minimum(1.0, step / warm_steps)

    def linear(key):
        w = jax.random.normal(key, (EMBEDDING, num_classes)) / np.sqrt(EMBEDDING)
        return {"w": w, "b": jnp.zeros(num_classes)}, ()

    def centers(key):
        # unit-norm rows: adam moves every coordinate by about the learning rate, so the
        # centers turn as fast as the network's last layer does
        w = jax.random.normal(key, (num_classes, EMBEDDING)) / np.sqrt(EMBEDDING)
        return {"centers": w}, jnp.int32(0)

    def with_inner(stateful):
        """Class centers, and the step count next to ``stateful``'s own state."""
        return lambda key: (centers(key)[0], (jnp.int32(0), stateful.init()))

    def margin_head(loss_fn, margin: float, **options):
        def loss(head, step, x, labels):
            value = loss_fn(x, head["centers"], labels, margin=warm(margin, step), **options)
            return value, step + 1

        return loss

    def stateful_head(stateful, margin: float):
        def loss(head, state, x, labels):
            step, inner = state
            value, inner = stateful.apply(
                inner, x, head["centers"], labels, scale=SCALE, margin=warm(margin, step)
            )
            return value, (step + 1, inner)

        return loss

    def elastic(head, step, x, labels):
        key = jax.random.fold_in(jax.random.PRNGKey(0), step)  # new margins every step
        value = jaxloss.elasticface(
            x, head["centers"], labels, key=key, scale=SCALE, margin=warm(0.5, step)
        )
        return value, step + 1

    # SphereFace's λ = max(5, 1000 / (1 + γ step)) (its Caffe prototxt: γ = 0.12, reaching
    # 5 at step 1,658), with γ set to reach 5 at 60% of this run's steps.
    gamma = 199.0 / (0.6 * steps)
    sphereface = compose.inject_hyperparams(
        jaxloss.sphereface, lam=lambda step: jnp.maximum(5.0, 1000.0 / (1.0 + gamma * step))
    )
    curricular = compose.curricularface_with_state()
    adaface = compose.adaface_with_state()
    warm_note = f"margin warm-up {WARMUP:.0%}"
    return {
        "softmax": Recipe(
            "linear classifier",
            linear,
            stateless(lambda head, x, y: jaxloss.cross_entropy(x @ head["w"] + head["b"], y)),
        ),
        "NormFace": Recipe(
            f"s={SCALE:g}",
            lambda key: (centers(key)[0], ()),
            stateless(lambda head, x, y: jaxloss.norm_softmax(x, head["centers"], y, scale=SCALE)),
        ),
        "CosFace": Recipe(
            f"s={SCALE:g}, m=0.35, {warm_note}",
            centers,
            margin_head(jaxloss.cosface, 0.35, scale=SCALE),
        ),
        "ArcFace": Recipe(
            f"s={SCALE:g}, m=0.5, {warm_note}",
            centers,
            margin_head(jaxloss.arcface, 0.5, scale=SCALE),
        ),
        "SphereFace": Recipe(
            "m=4, s=‖x‖, λ: 1000→5 by 60%",
            lambda key: (centers(key)[0], sphereface.init()),
            lambda head, state, x, y: sphereface.apply(state, x, head["centers"], y, margin=4),
        ),
        "CurricularFace": Recipe(
            f"s={SCALE:g}, m=0.5, {warm_note}",
            with_inner(curricular),
            stateful_head(curricular, 0.5),
        ),
        "AdaFace": Recipe(
            f"s={SCALE:g}, m=0.4, h=0.333, {warm_note}",
            with_inner(adaface),
            stateful_head(adaface, 0.4),
        ),
        "ElasticFace": Recipe(
            f"s={SCALE:g}, m~N(0.5, 0.05), {warm_note}",
            centers,
            elastic,
        ),
        "triplet (batch-hard)": batch_hard_triplet(),
        "supervised contrastive": Recipe(
            f"τ={SUPCON_TEMPERATURE:g}",
            lambda key: ({}, ()),
            stateless(lambda head, x, y: jaxloss.supcon(x, y, temperature=SUPCON_TEMPERATURE)),
        ),
    }


def make_optimizer(steps: int) -> optax.GradientTransformation:
    """Adam with a warm-up and cosine decay; the heads' parameters (linear classifier, class
    centers) at ``HEAD_LEARNING_RATE`` times the network's rate: each training identity is
    in one batch of 30, and a short run would leave its center near where it started."""

    def adam(scale: float) -> optax.GradientTransformation:
        peak = scale * LEARNING_RATE
        return optax.adam(
            optax.warmup_cosine_decay_schedule(0.0, peak, max(1, steps // 10), steps, peak / 20)
        )

    return optax.multi_transform(
        {"net": adam(1.0), "head": adam(HEAD_LEARNING_RATE)},
        lambda params: {
            "net": jax.tree.map(lambda _: "net", params["net"]),
            "head": jax.tree.map(lambda _: "head", params["head"]),
        },
    )


def make_step(graphdef, recipe: Recipe, optimizer: optax.GradientTransformation):
    """The compiled training step of one loss: adam on network and head; the loss state
    and the batch-norm statistics move by their own rules."""

    @jax.jit
    def step(params, stats, loss_state, opt_state, images, labels):
        model = nnx.merge(graphdef, params["net"], stats)

        def objective(model, head):
            return recipe.loss(head, loss_state, model(images), labels)

        value_and_grad = nnx.value_and_grad(
            objective, argnums=(nnx.DiffState(0, nnx.Param), 1), has_aux=True
        )
        (loss, loss_state), (net_grads, head_grads) = value_and_grad(model, params["head"])
        grads = {"net": net_grads, "head": head_grads}
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, nnx.state(model, nnx.BatchStat), loss_state, opt_state, loss

    return step


def init_network(seed: int):
    """``(graphdef, parameters, batch-norm statistics)`` of a fresh network for ``seed``."""
    return nnx.split(Embedder(nnx.Rngs(jax.random.PRNGKey(seed))), nnx.Param, nnx.BatchStat)


def train(step, recipe: Recipe, seed: int, images, labels, batches, optimizer, desc: str):
    """Trains a fresh network (seed ``seed``) on ``batches``; returns its parameters and
    batch-norm statistics."""
    _, net, stats = init_network(seed)
    head, loss_state = recipe.init(jax.random.PRNGKey(seed + 1000))
    params = {"net": net, "head": head}
    opt_state = optimizer.init(params)
    losses = []
    for rows in tqdm(batches, desc=desc, leave=False):
        params, stats, loss_state, opt_state, loss = step(
            params, stats, loss_state, opt_state, images[rows], labels[rows]
        )
        losses.append(loss)
    if not np.all(np.isfinite(jax.device_get(losses))):
        raise FloatingPointError(f"{desc}: the training loss became NaN or inf")
    return params["net"], stats


@functools.partial(jax.jit, static_argnums=0)
def _embed(graphdef, net, stats, images):
    model = nnx.merge(graphdef, net, stats)
    model.eval()  # batch norm with the running statistics
    return model(images)


def embed(graphdef, net, stats, images: np.ndarray) -> np.ndarray:
    """The embeddings of ``images``, in chunks."""
    chunks = range(0, len(images), 1024)
    return np.concatenate(
        [np.asarray(_embed(graphdef, net, stats, images[i : i + 1024])) for i in chunks]
    )


def plot_main(curves: dict, tars: dict[str, np.ndarray], out: str, name: str, title: str):
    """ROC curves of the first seed, and TAR at FAR = 1e-3 of every loss (mean ± std)."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 5.8), width_ratios=(1.15, 1))
    fig.subplots_adjust(wspace=0.4)  # room for the loss names
    roc_axes(left, curves, FARS[0], "identity")
    left.set_xlim(1e-5, 1.0)
    left.set_title(f"ROC on {title} (first seed)")
    labels = list(tars)
    means = [np.mean(tars[k]) for k in labels]
    colors = [
        "black" if k == "raw pixels" else "gray" if k.startswith("untrained") else "tab:blue"
        for k in labels
    ]
    right.barh(labels, means, xerr=[np.std(tars[k]) for k in labels], color=colors)
    for y, mean in enumerate(means):
        right.text(mean + 0.02 * max(means), y, f"{mean:.3f}", va="bottom", fontsize=8)
    right.invert_yaxis()
    right.set_xlim(0, 1.2 * max(means))
    right.set_xlabel(f"TAR @ FAR = {FARS[0]:g} (mean ± std over seeds)")
    right.set_title("How many same-identity pairs a strict lock accepts")
    right.grid(alpha=0.3, axis="x")
    save_figure(fig, out, name)


def plot_angles(results: dict[str, dict], out: str, name: str):
    """Per loss: histograms of the angle between same- and different-identity pairs."""
    import matplotlib.pyplot as plt

    columns = 4
    rows = -(-len(results) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.7 * rows), sharex=True)
    bins = np.linspace(0, 180, 91)
    rng = np.random.default_rng(0)
    for ax, (label, result) in zip(axes.flat, results.items(), strict=False):
        angles = np.degrees(np.arccos(np.clip(result["scores"], -1.0, 1.0)))
        different = angles[~result["same"]]
        different = different[rng.choice(len(different), min(len(different), 200_000), False)]
        ax.hist(different, bins, density=True, alpha=0.6, color="tab:red", label="different")
        ax.hist(angles[result["same"]], bins, density=True, alpha=0.6, label="same identity")
        # the threshold that accepts FARS[0] of the different-identity pairs
        accept = np.quantile(result["scores"][~result["same"]], 1 - FARS[0])
        threshold = np.degrees(np.arccos(np.clip(accept, -1.0, 1.0)))
        ax.axvline(threshold, color="black", linewidth=0.8, linestyle="--")
        ax.set_title(f"{label}: TAR {result['tar'][FARS[0]]:.2f}", fontsize=9)
        ax.set_yticks([])
    for ax in axes.flat[len(results) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("angle between embeddings (degrees)")
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(
        "Unseen identities: angles between pairs (first seed); dashed: the threshold "
        f"accepting {FARS[0]:g} of different pairs",
        fontsize=11,
    )
    fig.tight_layout()
    save_figure(fig, out, name)


def plot_neighbours(
    images: np.ndarray,
    labels: np.ndarray,
    features: dict[str, np.ndarray],
    characters: np.ndarray,
    out: str,
    name: str,
    queries: int = 8,
    neighbours: int = 6,
):
    """Unseen queries, the other samples of their identity, and their nearest neighbours
    (cosine) in each embedding; a green frame marks a neighbour of the query's identity."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(1)
    chosen = rng.choice(len(labels), queries, replace=False)
    others = max(np.bincount(labels)) - 1
    # columns: query, other samples, then per embedding a gap and its neighbours
    starts = [1] + [2 + others + k * (neighbours + 1) for k in range(len(features))]
    columns = starts[-1] + neighbours
    fig, axes = plt.subplots(queries, columns, figsize=(0.62 * columns, 0.72 * queries))

    def show(ax, index: int, color: str | None = None) -> None:
        ax.imshow(images[index], cmap="gray_r", vmin=0, vmax=255)
        for spine in ax.spines.values():
            spine.set(color=color or "black", linewidth=2.5 if color else 0.8)

    for row, query in enumerate(chosen):
        show(axes[row, 0], query)
        axes[row, 0].set_ylabel(f"U+{ord(str(characters[labels[query]])[0]):04X}", fontsize=7)
        same = [i for i in np.flatnonzero(labels == labels[query]) if i != query]
        for k, index in enumerate(same):
            show(axes[row, starts[0] + k], index)
    axes[0, 0].set_title("query", fontsize=9)
    axes[0, starts[0]].set_title("other samples of its identity", fontsize=9, loc="left")
    for block, (label, rows) in enumerate(features.items()):
        unit_rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        first = starts[1 + block]
        axes[0, first].set_title(f"nearest: {label}", fontsize=9, loc="left")
        for row, query in enumerate(chosen):
            similarity = unit_rows @ unit_rows[query]
            similarity[query] = -np.inf
            for k, index in enumerate(np.argsort(-similarity)[:neighbours]):
                right = labels[index] == labels[query]
                show(axes[row, first + k], index, "tab:green" if right else "tab:red")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.axis("off")
    fig.suptitle(
        "Unseen identities: a query sample, its identity in other fonts, and its nearest "
        "other samples (green: same identity)",
        fontsize=11,
    )
    save_figure(fig, out, name)


def main() -> None:
    """Trains one network per loss and seed, verifies the unseen identities, writes results."""

    def options(parser):
        parser.add_argument("--seeds", type=int, help="number of seeds (default 3; quick: 1)")
        parser.add_argument("--steps", type=int, help="adam steps (default 140; quick: 30)")
        parser.add_argument("--losses", help="comma-separated subset of the losses to train")

    args = parse_args(__doc__, options)
    seeds = args.seeds or (1 if args.quick else 3)
    steps = args.steps or (30 if args.quick else 140)
    started = time.perf_counter()

    data = glyphs()
    unseen = data.unseen[data.identities]
    train_ids = np.flatnonzero(~data.unseen)
    relabel = np.full(len(data.unseen), -1, np.int32)
    relabel[train_ids] = np.arange(len(train_ids))
    x_train, y_train = data.images[~unseen], relabel[data.identities[~unseen]]
    x_test, y_test = data.images[unseen], data.identities[unseen]
    if args.quick:  # CI: fewer unseen identities, so that scoring all pairs is quick
        keep = np.isin(y_test, np.flatnonzero(data.unseen)[:QUICK_UNSEEN])
        x_test, y_test = x_test[keep], y_test[keep]
    num_unseen = len(np.unique(y_test))
    losses = recipes(len(train_ids), steps)
    if args.losses:
        losses = {name: losses[name] for name in args.losses.split(",")}
    pairs = len(y_test) * (len(y_test) - 1) // 2
    print(
        f"glyphs: {len(train_ids):,} training identities ({len(y_train):,} samples), "
        f"{num_unseen:,} unseen ({len(y_test):,} samples, {pairs:,} pairs) from "
        f"{len(data.font_names)} fonts; {seeds} seed(s) x {len(losses)} losses x {steps} steps"
    )
    galleries = draw_galleries(np.random.default_rng(args.seed), y_test, GALLERY_DRAWS)
    pixels = x_test.reshape(len(x_test), -1).astype(np.float32)
    pixels -= x_train.reshape(len(x_train), -1).mean(axis=0)
    first = {"raw pixels": evaluate(pixels, y_test, galleries, FARS)}
    features = {"raw pixels": pixels}
    graphdef = init_network(0)[0]
    optimizer = make_optimizer(steps)
    metrics: dict[str, list] = {"untrained network": []} | {name: [] for name in losses}
    x_train_device, y_train_device = jnp.asarray(x_train), jnp.asarray(y_train)
    steps_of = {name: make_step(graphdef, recipe, optimizer) for name, recipe in losses.items()}
    bar = tqdm(total=seeds * len(losses), desc="losses x seeds")
    for seed in range(args.seed, args.seed + seeds):
        batches = pk_batches(
            np.random.default_rng(seed), y_train, IDENTITIES_PER_BATCH, PER_IDENTITY, steps
        )
        runs = {"untrained network": init_network(seed)[1:]}
        for name, recipe in losses.items():
            runs[name] = train(
                steps_of[name],
                recipe,
                seed,
                x_train_device,
                y_train_device,
                batches,
                optimizer,
                desc=f"{name} (seed {seed})",
            )
            bar.update()
        for name, net in runs.items():
            embedded = embed(graphdef, *net, x_test)
            result = evaluate(embedded, y_test, galleries, FARS)
            metrics[name].append([result["auc"], *result["tar"].values(), result["one_shot"]])
            if seed == args.seed:
                first[name], features[name] = result, embedded
    bar.close()

    raw = first["raw pixels"]
    raw_metrics = [raw["auc"], *raw["tar"].values(), raw["one_shot"]]
    rows = [["raw pixels", "cosine of centered pixels", *(f"{v:.3f}" for v in raw_metrics)]]
    settings = {"untrained network": "random initialization"}
    settings |= {name: recipe.settings for name, recipe in losses.items()}
    for name, runs in metrics.items():
        runs = np.asarray(runs)
        rows.append([name, settings[name], *(mean_std(runs[:, k]) for k in range(runs.shape[1]))])
    headers = [
        "loss",
        "settings",
        "ROC AUC",
        f"TAR @ FAR={FARS[0]:g}",
        f"TAR @ FAR={FARS[1]:g}",
        "one-shot accuracy",
    ]
    means = {name: np.mean(np.asarray(runs), axis=0) for name, runs in metrics.items()}
    learned = {name: m for name, m in means.items() if name != "untrained network"}
    winner = max(learned, key=lambda name: learned[name][1])
    margins = [n for n in learned if n not in ("softmax", "NormFace") and "(" not in n]
    margins = [n for n in margins if n != "supervised contrastive"]
    best_margin = max(margins, key=lambda name: learned[name][1])
    verdict = (
        f"Best at TAR @ FAR={FARS[0]:g}: {winner}, {learned[winner][1]:.3f} against softmax's "
        f"{learned['softmax'][1]:.3f} ({learned[winner][1] - learned['softmax'][1]:+.3f}); best "
        f"angular-margin head: {best_margin} ({learned[best_margin][1]:.3f}, "
        f"{learned[best_margin][1] - learned['softmax'][1]:+.3f} against softmax)."
    )
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "1 seed"
    report(
        args.out,
        "glyph_verification",
        f"Verification of {num_unseen} glyph identities never seen in training "
        f"({len(y_test):,} samples, {pairs:,} pairs), after training on "
        f"{len(train_ids):,} others; {spread}, {steps} adam steps of "
        f"{IDENTITIES_PER_BATCH}x{PER_IDENTITY} samples.",
        markdown_table(headers, rows),
        started,
        notes=f"Pairs are scored by the cosine of the embeddings. One-shot accuracy: mean over "
        f"{GALLERY_DRAWS} random one-sample galleries (chance 1/{num_unseen}). " + verdict,
    )
    tars = {"raw pixels": np.asarray([raw_metrics[1]])}
    tars |= {name: np.asarray(runs)[:, 1] for name, runs in metrics.items()}
    plot_main(first, tars, args.out, "glyph_verification", "unseen glyph identities")
    plot_angles(
        {name: first[name] for name in first if name != "untrained network"},
        args.out,
        "glyph_verification_angles",
    )
    plot_neighbours(
        x_test,
        y_test,
        {"raw pixels": features["raw pixels"], winner: features[winner]},
        data.characters,
        args.out,
        "glyph_verification_neighbours",
    )

    # Robust check: learned embeddings transfer to identities never seen.
    if not args.quick and learned[winner][0] < raw["auc"] + 0.15:
        best, pixels_auc = learned[winner][0], raw["auc"]
        raise SystemExit(
            f"no loss beat raw pixels by 0.15 ROC AUC ({best:.3f} vs {pixels_auc:.3f})"
        )
    if learned[winner][0] <= raw["auc"]:
        raise SystemExit(f"no loss beat raw pixels ({learned[winner][0]:.3f} vs {raw['auc']:.3f})")


if __name__ == "__main__":
    main()
