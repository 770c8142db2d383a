"""Zero-shot digits: which loss learns embeddings that tell apart digits it never saw?

What it shows: the face-unlock problem in miniature, and every embedding loss of jaxloss on
it. A phone that unlocks by face must decide whether two photos show the same person,
although its network never saw that person while it was trained: what it learned is an
*embedding*, a map from images to vectors in which one identity's images lie close together
and other identities' lie far apart. Here the identities are handwritten digits: a small MLP
embeds scikit-learn's 8x8 digits (shipped with scikit-learn, nothing is downloaded) and is
trained on the digits 0-6 only. It is then judged on the digits 7, 8 and 9, which it has
never seen, by the cosine similarity of L2-normalized embeddings, as a face-verification
system is.

The losses, all on the same network (64 -> 128 -> 128 -> 32-dimensional embedding, ReLU),
the same batches and the same number of adam steps:

* **softmax** (``jaxloss.cross_entropy``) on a linear classifier over the embedding: the
  plain classifier. It only asks that the 7 classes be linearly separable, not that each
  class be compact.
* **NormFace** (``jaxloss.norm_softmax``): softmax over scaled cosines between the embedding
  and 7 trainable class centers; a class is a direction on the sphere.
* **CosFace** (``jaxloss.cosface``), **ArcFace** (``jaxloss.arcface``) and **SphereFace**
  (``jaxloss.sphereface``): the same, with a margin that the true class's cosine (CosFace),
  angle (ArcFace) or multiplied angle (SphereFace) must win by, which squeezes each class
  into a tighter cone than it needs to be classified.
* **contrastive** (``jaxloss.contrastive``) over all pairs of the batch: pulls every pair of
  the same digit together, pushes pairs of different digits apart until they are a margin
  away. No class centers: it learns from relations only.
* **triplet, batch-hard** (``jaxloss.batch_triplet`` with ``mining="hard"``): for each
  anchor, its farthest same-digit example must be closer than its nearest other-digit
  example, by a margin.
* **softmax + center** (``jaxloss.cross_entropy`` + λ ``jaxloss.center_loss``, Wen et al.
  2016): the plain classifier, plus a pull of each embedding towards its class center. The
  centers are not trained by the optimizer but moved by the paper's rule
  (``jaxloss.center_update``), through ``jaxloss.compose.center_loss_with_update``.

Hyperparameters are each loss's usual ones, scaled down where the defaults are meant for
thousands of identities (scale 30 instead of 64); the table lists them. The pair and triplet
losses work on L2-normalized embeddings, the space they are evaluated in. SphereFace's target
logit is hard to fit from the start; as in its paper, its weight λ of the plain cosine is
annealed from 1000 down to 5 (``jaxloss.compose.inject_hyperparams``). Every batch holds 16
images of each of the 7 training digits (a "P x K" sampler: the pair and triplet losses need
several images per identity; all losses get the same batches). A quarter of the 0-6 images
is held out of training. The full run repeats everything for 5 seeds (network
initialization and batches) and reports mean ± standard deviation over them.

The metrics, on the 533 images of 7, 8 and 9:

* **ROC AUC**: every pair of test images is scored by the cosine of their embeddings; the
  area under the ROC curve of "same digit" against that score (``sklearn.metrics``). 0.5 is
  chance, 1 a perfect ranking of all pairs.
* **TAR @ FAR = 1e-2**: the true accept rate (the fraction of same-digit pairs accepted) at
  the threshold where 1% of different-digit pairs are falsely accepted, interpolated on the
  ROC curve. A phone sets its threshold for a low false accept rate.
* **one-shot accuracy**: enroll one random image of each unseen digit (the "gallery"); every
  other test image takes the digit of its most similar gallery image. The mean over 1,000
  random galleries (the same for every loss); chance is 1/3.

Two reference points keep the comparison honest. The **raw pixels** row scores the
standardized pixels themselves by cosine: an embedding has learned something that transfers
only where it beats this row. The last column scores the held-out images of the *seen*
digits 0-6 the same way (ROC AUC): what the loss learned about the identities it trained on.
The gap between that column and the unseen one is the point of the example: face-unlock
networks are trained on tens of thousands of identities so that new faces look like old
ones; seven identities are few, and an embedding can specialize to them and lose what set
the other digits apart.

Outputs: ``zero_shot_digits.png`` (ROC curves of the first seed with a logarithmic
false-accept axis, and seen vs unseen AUC of every loss), ``zero_shot_digits_embeddings.png``
(2-D PCA of the unseen digits' unit embeddings, one panel per loss, first seed) and
``zero_shot_digits.md`` (the table).

Run it from the repository root::

    .venv/bin/python examples/zero_shot_digits.py            # 5 seeds, 400 steps each
    .venv/bin/python examples/zero_shot_digits.py --quick    # 1 seed, 150 steps (CI)
    .venv/bin/python examples/zero_shot_digits.py --seeds 3 --steps 1000
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import digits, markdown_table, mlp_apply, mlp_init, parse_args, report, save_figure
from _verification import (
    Recipe,
    batch_hard_triplet,
    cosine_pairs,
    draw_galleries,
    mean_std,
    pk_batches,
    stateless,
    unit,
)
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

import jaxloss
from jaxloss import compose

TRAIN_DIGITS = 7  # digits 0..6 train; 7, 8, 9 are never seen
EMBEDDING = 32
SIZES = (64, 128, 128, EMBEDDING)
PER_CLASS = 16  # K images of each of the 7 training digits in every batch
LEARNING_RATE = 1e-3
FAR = 1e-2
GALLERY_DRAWS = 1000
HELD_OUT = 0.25  # of the 0-6 images, to check that training worked on seen digits
OPTIMIZER = optax.adam(LEARNING_RATE)
MARGIN_SCALE = 30.0  # NormFace, CosFace, ArcFace (64 is for thousands of identities)
CONTRASTIVE_MARGIN = 1.0  # on unit embeddings, whose distances lie in [0, 2]
CENTER_WEIGHT = 0.1  # λ of the center loss next to the cross-entropy
CENTER_ALPHA = 0.5  # the centers' own learning rate in Wen et al.'s update


def _linear_classifier(key: jax.Array) -> tuple[dict[str, jax.Array], tuple]:
    return mlp_init(key, (EMBEDDING, TRAIN_DIGITS))["layer0"], ()


def _class_centers(key: jax.Array) -> tuple[dict[str, jax.Array], tuple]:
    return {"centers": jax.random.normal(key, (TRAIN_DIGITS, EMBEDDING))}, ()


def _softmax(head, embeddings, labels) -> jax.Array:
    return jaxloss.cross_entropy(embeddings @ head["w"] + head["b"], labels)


def _margin_head(margin_loss: Callable[..., jax.Array], **hyperparameters) -> Callable:
    """A margin softmax against the trainable class centers."""
    return stateless(
        lambda head, x, labels: margin_loss(x, head["centers"], labels, **hyperparameters)
    )


def _all_pairs(embeddings: jax.Array, labels: jax.Array, margin: float) -> jax.Array:
    """Contrastive loss over the batch's ``batch·(batch-1)/2`` pairs, on unit embeddings."""
    first, second = np.triu_indices(embeddings.shape[0], k=1)
    rows = unit(embeddings)
    similar = labels[first] == labels[second]
    return jaxloss.contrastive(rows[first], rows[second], similar, margin=margin)


center = compose.center_loss_with_update(alpha=CENTER_ALPHA)
# SphereFace's λ schedule (its Caffe prototxt): max(5, 1000 / (1 + 0.12 step)).
annealed_sphereface = compose.inject_hyperparams(
    jaxloss.sphereface, lam=lambda step: jnp.maximum(5.0, 1000.0 / (1.0 + 0.12 * step))
)


def _softmax_and_center(head, state, embeddings, labels):
    pull, state = center.apply(state, embeddings, labels)
    return _softmax(head, embeddings, labels) + CENTER_WEIGHT * pull, state


def _sphereface(head, state, embeddings, labels):
    return annealed_sphereface.apply(state, embeddings, head["centers"], labels, margin=4)


RECIPES: dict[str, Recipe] = {
    "softmax": Recipe("linear classifier", _linear_classifier, stateless(_softmax)),
    "NormFace": Recipe(
        f"s={MARGIN_SCALE:g}",
        _class_centers,
        _margin_head(jaxloss.norm_softmax, scale=MARGIN_SCALE),
    ),
    "CosFace": Recipe(
        f"s={MARGIN_SCALE:g}, m=0.35",
        _class_centers,
        _margin_head(jaxloss.cosface, scale=MARGIN_SCALE, margin=0.35),
    ),
    "ArcFace": Recipe(
        f"s={MARGIN_SCALE:g}, m=0.5",
        _class_centers,
        _margin_head(jaxloss.arcface, scale=MARGIN_SCALE, margin=0.5),
    ),
    "SphereFace": Recipe(
        "m=4, s=‖x‖, λ: 1000→5",
        lambda key: (_class_centers(key)[0], annealed_sphereface.init()),
        _sphereface,
    ),
    "contrastive": Recipe(
        f"all batch pairs, unit x, margin {CONTRASTIVE_MARGIN:g}",
        lambda key: ({}, ()),
        stateless(lambda head, x, labels: _all_pairs(x, labels, CONTRASTIVE_MARGIN)),
    ),
    "triplet (batch-hard)": batch_hard_triplet(),
    "softmax + center": Recipe(
        f"λ={CENTER_WEIGHT:g}, α={CENTER_ALPHA:g} (center_update)",
        lambda key: (_linear_classifier(key)[0], center.init(jnp.zeros((TRAIN_DIGITS, EMBEDDING)))),
        _softmax_and_center,
    ),
}


@functools.partial(jax.jit, static_argnames="recipe")
def train_step(recipe: Recipe, params, loss_state, opt_state, x, labels):
    """One adam step on the network and the head; the loss state moves by its own rule."""

    def objective(params):
        embeddings = mlp_apply(params["net"], x)
        return recipe.loss(params["head"], loss_state, embeddings, labels)

    (loss, loss_state), grads = jax.value_and_grad(objective, has_aux=True)(params)
    updates, opt_state = OPTIMIZER.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), loss_state, opt_state, loss


def train(recipe: Recipe, seed: int, x, labels, batches: np.ndarray, desc: str):
    """Trains the network with ``recipe`` on ``batches``; returns the network's parameters."""
    net_key, head_key = jax.random.split(jax.random.PRNGKey(seed))
    head, loss_state = recipe.init(head_key)
    params = {"net": mlp_init(net_key, SIZES), "head": head}
    opt_state = OPTIMIZER.init(params)
    losses = []
    for rows in tqdm(batches, desc=desc, leave=False):
        params, loss_state, opt_state, loss = train_step(
            recipe, params, loss_state, opt_state, x[rows], labels[rows]
        )
        losses.append(loss)
    if not np.all(np.isfinite(jax.device_get(losses))):
        raise FloatingPointError(f"{desc}: the training loss became NaN or inf")
    return params["net"]


def evaluate(features: np.ndarray, labels: np.ndarray, galleries: np.ndarray) -> dict:
    """Verification and one-shot identification by cosine similarity.

    Args:
      features: ``[n, dim]`` embeddings (or pixels) of the test images.
      labels: ``[n]`` their digits.
      galleries: ``[draws, classes]`` indices: one enrolled image per class per draw.

    Returns:
      ``{"auc", "tar", "one_shot", "fpr", "tpr"}``.
    """
    similarity, scores, same = cosine_pairs(features, labels)
    fpr, tpr, _ = roc_curve(same, scores)
    classes = labels[galleries[0]]
    predicted = classes[np.argmax(similarity[:, galleries], axis=-1)]  # [n, draws]
    query = np.all(np.arange(len(labels))[:, None, None] != galleries[None], axis=-1)
    correct = (predicted == labels[:, None]) & query
    return {
        "auc": roc_auc_score(same, scores),
        "tar": float(np.interp(FAR, fpr, tpr)),
        "one_shot": float(np.mean(correct.sum(0) / query.sum(0))),
        "fpr": fpr,
        "tpr": tpr,
    }


def seen_auc(features: np.ndarray, labels: np.ndarray) -> float:
    """Pair-verification ROC AUC, for the held-out images of the training digits."""
    _, scores, same = cosine_pairs(features, labels)
    return float(roc_auc_score(same, scores))


def pca_2d(features: np.ndarray) -> np.ndarray:
    """The first two principal components of the L2-normalized rows."""
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    centered = unit - unit.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    return centered @ vt[:2].T


def plot_roc(curves: dict[str, dict], aucs: dict[str, np.ndarray], out: str, name: str):
    """ROC curves (log false-accept axis) and the seen vs unseen AUC of every loss.

    Args:
      curves: label -> ``evaluate`` result of the first seed.
      aucs: label -> ``[runs, 2]`` ROC AUCs (unseen 7-9, held-out seen 0-6) over the seeds.
      out: the output folder.
      name: the file stem.
    """
    import matplotlib.pyplot as plt

    fig, (roc, bars) = plt.subplots(1, 2, figsize=(14, 5.5), width_ratios=(1.1, 1))
    for (label, result), color in zip(curves.items(), plt.cm.tab10.colors, strict=False):
        style = dict(color="black", linestyle="--") if label == "raw pixels" else dict(color=color)
        roc.plot(result["fpr"], result["tpr"], label=f"{label} (AUC {result['auc']:.3f})", **style)
    roc.axvline(FAR, color="gray", linewidth=0.8, linestyle=":")
    roc.text(FAR * 1.1, 0.02, f"FAR = {FAR:g}", color="gray")
    roc.set_xscale("log")
    roc.set_xlim(1e-4, 1.0)
    roc.set_ylim(0.0, 1.01)
    roc.set_xlabel("false accept rate (different-digit pairs accepted), log scale")
    roc.set_ylabel("true accept rate (same-digit pairs accepted)")
    roc.set_title("ROC on the unseen digits 7-9, cosine similarity (first seed)")
    roc.legend(loc="upper left", fontsize=8)
    roc.grid(alpha=0.3, which="both")

    labels = list(aucs)
    position = np.arange(len(labels))
    for offset, column, text, color in (
        (-0.2, 1, "seen digits 0-6 (held-out images)", "tab:gray"),
        (0.2, 0, "unseen digits 7-9", "tab:blue"),
    ):
        values = [aucs[label][:, column] for label in labels]
        bars.bar(
            position + offset,
            [np.mean(v) for v in values],
            width=0.4,
            yerr=[np.std(v) for v in values],
            color=color,
            label=text,
        )
    bars.set_xticks(position, labels, rotation=30, ha="right")
    bars.set_ylim(0.5, 1.1)  # room for the legend above the bars
    bars.set_yticks(np.arange(0.5, 1.01, 0.1))
    bars.set_ylabel("pair-verification ROC AUC (cosine)")
    runs = max(len(v) for v in aucs.values())
    spread = f"mean ± std over {runs} seeds" if runs > 1 else "1 seed"
    bars.set_title(f"What was learned vs what transfers ({spread})")
    bars.legend(loc="upper center", ncol=2, fontsize=8)
    bars.grid(alpha=0.3, axis="y")
    save_figure(fig, out, name)


def plot_embeddings(points: dict[str, np.ndarray], labels: np.ndarray, out: str, name: str):
    """One scatter panel per loss of the ``[n, 2]`` PCA points, colored by digit."""
    import matplotlib.pyplot as plt

    columns = 3
    rows = -(-len(points) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 3.1 * rows))
    for ax, (label, xy) in zip(axes.flat, points.items(), strict=False):
        for digit, color in zip(
            np.unique(labels), ("tab:blue", "tab:orange", "tab:green"), strict=True
        ):
            mask = labels == digit
            ax.scatter(xy[mask, 0], xy[mask, 1], s=5, alpha=0.6, color=color, label=str(digit))
        ax.set_title(label, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("PC 1", fontsize=8)
        ax.set_ylabel("PC 2", fontsize=8)
    for ax in axes.flat[len(points) :]:
        ax.axis("off")
    axes.flat[0].legend(title="digit", fontsize=8, markerscale=2, loc="best")
    fig.suptitle("Unseen digits 7-9: 2-D PCA of the unit embeddings (first seed)")
    fig.tight_layout()
    save_figure(fig, out, name)


def main() -> None:
    """Trains one network per loss and seed, evaluates on digits 7-9, writes table and plots."""

    def options(parser):
        parser.add_argument("--seeds", type=int, help="number of seeds (default 5; quick: 1)")
        parser.add_argument("--steps", type=int, help="adam steps (default 400; quick: 150)")

    args = parse_args(__doc__, options)
    seeds = args.seeds or (1 if args.quick else 5)
    steps = args.steps or (150 if args.quick else 400)
    started = time.perf_counter()

    images, labels = digits()
    seen = labels < TRAIN_DIGITS
    x_train, x_seen, y_train, y_seen = train_test_split(
        images[seen], labels[seen], test_size=HELD_OUT, stratify=labels[seen], random_state=0
    )
    x_test, y_test = images[~seen], labels[~seen]
    print(
        f"digits: {len(y_train)} training images of 0-{TRAIN_DIGITS - 1} "
        f"({len(y_seen)} more held out), {len(y_test)} test images of the unseen "
        f"{TRAIN_DIGITS}-9; {seeds} seed(s) x {len(RECIPES)} losses x {steps} steps"
    )
    galleries = draw_galleries(np.random.default_rng(args.seed), y_test, GALLERY_DRAWS)
    first_seed = {"raw pixels": evaluate(x_test, y_test, galleries)}
    embeddings, metrics = {}, {name: [] for name in RECIPES}
    x_train, y_train = jnp.asarray(x_train), jnp.asarray(y_train)
    bar = tqdm(total=seeds * len(RECIPES), desc="losses x seeds")
    for seed in range(args.seed, args.seed + seeds):
        batches = pk_batches(
            np.random.default_rng(seed), np.asarray(y_train), TRAIN_DIGITS, PER_CLASS, steps
        )
        for name, recipe in RECIPES.items():
            net = train(recipe, seed, x_train, y_train, batches, desc=f"{name} (seed {seed})")
            features = np.asarray(mlp_apply(net, jnp.asarray(x_test)))
            result = evaluate(features, y_test, galleries)
            seen_features = np.asarray(mlp_apply(net, jnp.asarray(x_seen)))
            metrics[name].append(
                [result["auc"], result["tar"], result["one_shot"], seen_auc(seen_features, y_seen)]
            )
            if seed == args.seed:
                first_seed[name], embeddings[name] = result, features
            bar.update()
    bar.close()

    pixels = first_seed["raw pixels"]
    pixel_metrics = [pixels["auc"], pixels["tar"], pixels["one_shot"], seen_auc(x_seen, y_seen)]
    rows = [["raw pixels", "cosine of standardized pixels", *(f"{v:.3f}" for v in pixel_metrics)]]
    for name, recipe in RECIPES.items():
        runs = np.asarray(metrics[name])
        rows.append([name, recipe.settings, *(mean_std(runs[:, k]) for k in range(runs.shape[1]))])
    headers = [
        "loss",
        "settings",
        "ROC AUC, unseen 7-9",
        f"TAR @ FAR={FAR:g}, unseen",
        "one-shot accuracy, unseen",
        "ROC AUC, seen 0-6 (held out)",
    ]
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "1 seed"
    report(
        args.out,
        "zero_shot_digits",
        f"Verification of digits the network never saw: trained on 0-6, tested on 7-9 "
        f"({len(y_test)} images, {len(y_test) * (len(y_test) - 1) // 2:,} pairs); {spread}, "
        f"{steps} adam steps of {TRAIN_DIGITS}x{PER_CLASS} images.",
        markdown_table(headers, rows),
        started,
        notes=f"Pairs are scored by the cosine of L2-normalized embeddings. One-shot accuracy: "
        f"mean over {GALLERY_DRAWS:,} random one-image galleries (chance 1/3). The last column "
        f"scores the {len(y_seen)} held-out images of the training digits the same way.",
    )
    aucs = {"raw pixels": np.asarray([pixel_metrics[::3]])}
    aucs |= {name: np.asarray(runs)[:, ::3] for name, runs in metrics.items()}
    plot_roc(first_seed, aucs, args.out, "zero_shot_digits")
    points = {"raw pixels": pca_2d(x_test)} | {k: pca_2d(v) for k, v in embeddings.items()}
    plot_embeddings(points, y_test, args.out, "zero_shot_digits_embeddings")

    # Robust checks: training worked on the digits it saw, and something transfers.
    best = np.max([np.mean(runs, axis=0) for runs in metrics.values()], axis=0)
    if best[3] < max(0.95, pixel_metrics[3]):
        raise SystemExit(f"no loss learned the seen digits (best held-out AUC {best[3]:.3f})")
    if best[2] < 0.5:
        raise SystemExit(f"no loss beat one-shot chance (1/3) clearly ({best[2]:.3f})")


if __name__ == "__main__":
    main()
