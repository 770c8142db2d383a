"""Segment thin vessels: overlap, boundary, Hausdorff and topology (clDice) losses compared.

What it shows: what the losses written for thin, curvilinear structures (vessels, neurons,
roads) change in the masks a segmenter draws. A one-pixel gap that cuts a vessel in two, or
a stray blob beside it, costs an overlap loss a few pixels out of hundreds; what it costs in
the *shape* of the answer (the vessel now has two pieces, the boundary is 20 pixels off)
is measured by other scores: the 95th-percentile Hausdorff distance between the outlines
(HD95), clDice (the overlap of the centre lines, Shit et al. 2021) and the number of
connected pieces. The script trains the same small network with seven losses and scores
each model on all of them.

Data (synthetic, generated here from ``--seed``): 48x48 grey images of a smooth random
texture (standard deviation 1) plus pixel noise (standard deviation 0.5), each holding one
vessel tree: a smooth random curve (a cubic Bézier) across the image, about 2 pixels wide,
with one to three thinner branches (about 1 pixel wide) leaving it, each also a Bézier
curve. A vessel adds up to 2 to the brightness (a Gaussian ridge profile), which makes it
about as bright as the texture's bright patches. Zero to two small round spots of the same
brightness are added as distractors and are not vessels (labelled background). The label
map is 1 on the vessel pixels (about 5% of the pixels) and 0 elsewhere; every tree is one
connected piece. 1,000 training and 200 test images.

The model is the fully convolutional network of ``imbalanced_segmentation.py`` in plain JAX
(``jax.lax.conv_general_dilated``), one layer deeper: four 3x3 convolutions with 8
channels (dilated by 1, 2, 4 and 1, so each output sees a 17x17 window) and a 1x1
convolution to two logits per pixel (background, vessel), channels last. Every loss gets
the same initial weights, batches (16 images), optimizer (Adam, learning rate 3e-3 with a
cosine decay to 0) and number of steps:

* ``jaxloss.cross_entropy`` on the logits and the integer label maps;
* ``jaxloss.dice`` on the softmax probabilities, ``include_background=False``;
* ``jaxloss.dice_ce``: that Dice plus the cross-entropy (nnU-Net's default);
* ``jaxloss.lovasz_softmax`` (the Lovász extension of the IoU loss, per image);
* Dice + ``jaxloss.boundary``: ``(1 - a) * Dice + a * boundary`` with ``a`` raised
  linearly from 0 to :data:`BOUNDARY_WEIGHT` over training, Kervadec et al.'s "rebalance"
  schedule (the boundary loss alone has no region term and starts from nothing);
* Dice + ``jaxloss.hausdorff_dt`` (Karimi and Salcudean's distance-transform Hausdorff
  loss, ``alpha=2``), its weight raised the same way from 0 to :data:`HAUSDORFF_WEIGHT`;
* Dice + ``jaxloss.soft_cldice`` (``num_iters=3``, more than the vessels' radius), as
  MONAI's ``SoftDiceclDiceLoss``: ``0.5 * Dice + 0.5 * clDice``.

All distance and clDice terms score the vessel class only (``include_background=False``).

A pixel is predicted vessel where its vessel probability exceeds 0.5 (the argmax). The table
scores the 200 test images: the vessel Dice pooled over the test set and averaged per image,
the clDice metric (per image: the harmonic mean of the share of the predicted skeleton lying
in the true vessels and of the true skeleton lying in the predicted ones; skeletons by
Zhang-Suen thinning, as ``skimage.morphology.skeletonize``), HD95 (per image, the larger of
the two directed 95th percentiles of the distances between the outline pixels of prediction
and truth, as MONAI's ``compute_hausdorff_distance(percentile=95)``; distances from
``jaxloss.distance_transform``; an empty prediction counts as the image's diagonal), and
the connected pieces of the predicted mask (8-connected, ``scipy.ndimage.label``): those
touching the true vessel tree (1 when it is found unbroken, more for each break), the share
of test images where it is, and the stray pieces that touch no vessel (false detections).

What to look for: the columns disagree, and so do the seeds. The losses with a Dice term
land within about 0.04 of each other in Dice; their HD95 and their broken vessels differ
more, and which one wins which column changes with ``--seed``: Dice + clDice leads the
clDice, HD95 and broken-vessel columns with seeds 1 and 2, but with seed 0 Dice + CE has
the best Dice, clDice and HD95 and Dice + clDice beats Dice alone only on stray pieces. The
scatter plot shows Dice against HD95 and clDice against the vessel's pieces per loss; the
figure of test masks shows where the differences come from: gaps in the thin branches
(blue, missed) and specks on the texture and the distractor spots (red, false alarms). What
held on all three seeds tried: the one-pixel branches break, so no Dice-based model keeps
the tree in one piece on more than about a quarter of the test images; and plain
cross-entropy trails every loss with a Dice term (with seed 1 it, and Lovász-softmax, still
predict no vessel at all after 500 steps), while each of those finds the vessels.

The script fails if the Dice-trained model's pooled test Dice is below 0.2, even with
``--quick`` (predicting background everywhere scores 0, a random 5% mask about 0.05).

Run it from the repository root::

    .venv/bin/python examples/thin_structures.py            # 500 steps per loss
    .venv/bin/python examples/thin_structures.py --quick    # 60 steps per loss
    .venv/bin/python examples/thin_structures.py --steps 1200 --seed 1
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from _common import batches, conv_apply, conv_init, markdown_table, parse_args, report, save_figure
from scipy import ndimage
from tqdm.auto import tqdm

import jaxloss

SIZE = 48
TEXTURE_SCALE = 3.0  # Gaussian blur of the background texture, in pixels
NOISE = 0.5  # pixel noise, relative to the texture's standard deviation
CONTRAST = 2.0  # peak added brightness of a vessel or a distractor spot
MAIN_RADIUS = (0.75, 1.0)  # half-width range of the main vessel, in pixels
BRANCH_RADIUS = (0.5, 0.7)  # half-width range of the branches
NUM_TRAIN, NUM_TEST = 1000, 200
WIDTH = 8
# (kernel size, input channels, output channels, dilation)
LAYERS = [
    (3, 1, WIDTH, 1),
    (3, WIDTH, WIDTH, 2),
    (3, WIDTH, WIDTH, 4),
    (3, WIDTH, WIDTH, 1),
    (1, WIDTH, 2, 1),
]
BATCH_SIZE = 16
LEARNING_RATE = 3e-3
BOUNDARY_WEIGHT = 0.5  # final a of (1 - a) * Dice + a * boundary
HAUSDORFF_WEIGHT = 0.05  # final w of Dice + w * hausdorff_dt
MIN_DICE = 0.2  # the pooled test Dice the Dice-trained model must reach, even with --quick

Params = dict[str, dict[str, jax.Array]]
_OFFSETS = np.stack(np.mgrid[-2:3, -2:3], axis=-1).reshape(-1, 2)


def bezier(rng: np.random.Generator, start: np.ndarray, end: np.ndarray, bend: float):
    """300 points along a cubic Bézier curve from ``start`` to ``end`` (row, column).

    The two inner control points sit at a third and two thirds of the chord, pushed sideways
    by a normal draw of standard deviation ``bend`` pixels; every control point is kept in
    the image, so the curve is too (it lies in their convex hull).
    """
    chord = end - start
    normal = np.array([-chord[1], chord[0]]) / max(np.linalg.norm(chord), 1e-9)
    controls = [start, start + chord / 3, start + 2 * chord / 3, end]
    controls[1] = controls[1] + normal * rng.normal(0, bend)
    controls[2] = controls[2] + normal * rng.normal(0, bend)
    c0, c1, c2, c3 = (np.clip(c, 1, SIZE - 2) for c in controls)
    s = np.linspace(0, 1, 300)[:, None]
    return (1 - s) ** 3 * c0 + 3 * (1 - s) ** 2 * s * c1 + 3 * (1 - s) * s**2 * c2 + s**3 * c3


def distance_to(points: np.ndarray) -> np.ndarray:
    """``[SIZE, SIZE]``: each pixel's distance to the nearest of ``points`` (inf beyond 2 px)."""
    pixels = np.round(points).astype(int)[:, None, :] + _OFFSETS[None]
    distance = np.linalg.norm(pixels - points[:, None, :], axis=-1).ravel()
    pixels = pixels.reshape(-1, 2)
    inside = np.all((pixels >= 0) & (pixels < SIZE), axis=1)
    out = np.full(SIZE * SIZE, np.inf)
    np.minimum.at(out, pixels[inside, 0] * SIZE + pixels[inside, 1], distance[inside])
    return out.reshape(SIZE, SIZE)


def make_images(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy textured images, each with one vessel tree and a few distractor spots.

    Args:
      rng: the NumPy generator that draws everything.
      n: number of images.

    Returns:
      ``(images [n, SIZE, SIZE, 1] float32, labels [n, SIZE, SIZE] int32)``, labels 1 on the
      vessels and 0 elsewhere (distractor spots included).
    """
    rows, cols = np.mgrid[:SIZE, :SIZE].astype(np.float64)
    images = np.empty((n, SIZE, SIZE, 1), np.float32)
    labels = np.empty((n, SIZE, SIZE), np.int32)
    for i in range(n):
        texture = ndimage.gaussian_filter(rng.normal(size=(SIZE, SIZE)), TEXTURE_SCALE, mode="wrap")
        image = texture / texture.std() + NOISE * rng.normal(size=(SIZE, SIZE))
        while True:  # the main vessel crosses most of the image
            start, end = rng.uniform(2, SIZE - 3, size=(2, 2))
            if np.linalg.norm(end - start) > 30:
                break
        curves = [(bezier(rng, start, end, 8.0), rng.uniform(*MAIN_RADIUS))]
        for _ in range(rng.integers(1, 4)):  # branches leave a point of an earlier curve
            parent = curves[rng.integers(len(curves))][0]
            start = parent[rng.integers(60, 240)]
            angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(10, 25)
            end = np.clip(start + length * np.array([np.cos(angle), np.sin(angle)]), 1, SIZE - 2)
            curves.append((bezier(rng, start, end, 3.0), rng.uniform(*BRANCH_RADIUS)))
        mask = np.zeros((SIZE, SIZE), bool)
        ridge = np.zeros((SIZE, SIZE))
        for points, radius in curves:
            distance = distance_to(points)
            mask |= distance <= radius
            ridge = np.maximum(ridge, np.exp(-0.5 * (distance / max(radius, 0.6)) ** 2))
        for _ in range(rng.integers(0, 3)):  # distractors: round spots, not vessels
            center_row, center_col = rng.uniform(3, SIZE - 3, size=2)
            radius = rng.uniform(1.2, 2.0)
            spot = np.exp(-0.5 * ((rows - center_row) ** 2 + (cols - center_col) ** 2) / radius**2)
            ridge = np.maximum(ridge, spot)
        images[i, ..., 0] = image + CONTRAST * ridge
        labels[i] = mask
    return images, labels


def init_params(key: jax.Array) -> Params:
    """He-normal convolution kernels (HWIO) and zero biases for :data:`LAYERS`."""
    return conv_init(key, LAYERS)


def forward(params: Params, images: jax.Array) -> jax.Array:
    """``[batch, height, width, 2]`` logits (background, vessel) of images
    ``[batch, height, width, 1]``: the network of :data:`LAYERS`."""
    return conv_apply(params, images, LAYERS)


def _dice(logits, labels):
    """The vessel class's Dice loss on the softmax probabilities."""
    return jaxloss.dice(jax.nn.softmax(logits), labels, include_background=False)


# Each loss maps (logits [batch, h, w, 2], labels [batch, h, w] int, progress) to a scalar;
# progress runs from 0 at the first step to 1 at the last (for the ramped weights).
LOSSES = {
    "cross-entropy": lambda logits, labels, progress: jaxloss.cross_entropy(logits, labels),
    "Dice": lambda logits, labels, progress: _dice(logits, labels),
    "Dice + CE": lambda logits, labels, progress: jaxloss.dice_ce(
        logits, labels, include_background=False
    ),
    "Lovász-softmax": lambda logits, labels, progress: jaxloss.lovasz_softmax(
        logits, labels, from_logits="softmax"
    ),
    "Dice + boundary": lambda logits, labels, progress: (
        (1 - BOUNDARY_WEIGHT * progress) * _dice(logits, labels)
        + BOUNDARY_WEIGHT
        * progress
        * jaxloss.boundary(jax.nn.softmax(logits), labels, include_background=False)
    ),
    "Dice + Hausdorff DT": lambda logits, labels, progress: (
        _dice(logits, labels)
        + HAUSDORFF_WEIGHT
        * progress
        * jaxloss.hausdorff_dt(jax.nn.softmax(logits), labels, include_background=False)
    ),
    "Dice + clDice": lambda logits, labels, progress: (
        0.5 * _dice(logits, labels)
        + 0.5 * jaxloss.soft_cldice(jax.nn.softmax(logits), labels, include_background=False)
    ),
}


@jax.jit
def predict(params: Params, images: jax.Array) -> jax.Array:
    """``[batch, h, w]`` bool: vessel probability above 0.5 (the argmax of the two logits)."""
    return jnp.argmax(forward(params, images), axis=-1) == 1


def skeletonize(masks: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a batch of binary masks ``[n, h, w]`` to one-pixel centre lines.

    Zhang and Suen, "A fast parallel algorithm for thinning digital patterns", CACM 1984;
    what ``skimage.morphology.skeletonize`` computes in 2-D. All images are thinned at once.
    """
    x = np.pad(masks.astype(bool), ((0, 0), (1, 1), (1, 1)))
    while True:
        changed = False
        for first in (True, False):
            # the 8 neighbours P2..P9, clockwise from north
            p = [
                np.roll(x, shift, axis=(1, 2))
                for shift in [(1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1)]
            ]
            count = sum(q.astype(int) for q in p)
            transitions = sum((~p[k] & p[(k + 1) % 8]).astype(int) for k in range(8))
            if first:
                c1, c2 = p[0] & p[2] & p[4], p[2] & p[4] & p[6]
            else:
                c1, c2 = p[0] & p[2] & p[6], p[0] & p[4] & p[6]
            remove = x & (count >= 2) & (count <= 6) & (transitions == 1) & ~c1 & ~c2
            if remove.any():
                x = x & ~remove
                changed = True
        if not changed:
            return x[:, 1:-1, 1:-1]


def hd95(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-image 95th-percentile symmetric Hausdorff distance between the mask outlines.

    An outline pixel is a mask pixel with a 4-neighbour outside the mask; the distances come
    from ``jaxloss.distance_transform``. An empty prediction scores the image's diagonal.
    """
    cross = ndimage.generate_binary_structure(2, 1)[None]
    outlines = [m & ~ndimage.binary_erosion(m, cross) for m in (predicted, truth)]
    # distance of every pixel to the nearest outline pixel of each mask
    to_pred, to_truth = (
        np.asarray(jaxloss.distance_transform(~o, num_spatial_dims=2)) for o in outlines
    )
    result = np.full(len(truth), np.hypot(SIZE, SIZE))
    for i in range(len(truth)):
        if outlines[0][i].any():
            result[i] = max(
                np.percentile(to_truth[i][outlines[0][i]], 95),
                np.percentile(to_pred[i][outlines[1][i]], 95),
            )
    return result


def scores(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The table's vessel scores of binary predictions ``[n, h, w]``."""
    truth = labels == 1
    axes = (1, 2)
    tp = np.sum(predicted & truth, axis=axes)
    fp = np.sum(predicted & ~truth, axis=axes)
    fn = np.sum(~predicted & truth, axis=axes)
    skeleton_p, skeleton_t = skeletonize(predicted), skeletonize(truth)
    t_prec = np.sum(skeleton_p & truth, axis=axes) / np.maximum(np.sum(skeleton_p, axis=axes), 1)
    t_sens = np.sum(skeleton_t & predicted, axis=axes) / np.maximum(
        np.sum(skeleton_t, axis=axes), 1
    )
    cldice = 2 * t_prec * t_sens / np.maximum(t_prec + t_sens, 1e-12)
    eight = np.ones((3, 3), bool)
    on_vessel, stray = np.zeros(len(truth)), np.zeros(len(truth))
    for i, (pred, true) in enumerate(zip(predicted, truth, strict=True)):
        regions, n_regions = ndimage.label(pred, eight)
        on_vessel[i] = len(np.setdiff1d(np.unique(regions[true]), [0]))
        stray[i] = n_regions - on_vessel[i]
    true_pieces = np.array([ndimage.label(t, eight)[1] for t in truth])
    return {
        "dice": 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1),
        "image_dice": float(np.mean(2 * tp / np.maximum(2 * tp + fp + fn, 1))),
        "cldice": float(cldice.mean()),
        "hd95": float(hd95(predicted, truth).mean()),
        "empty": int(np.sum(~predicted.any(axis=axes))),
        "on_vessel": float(on_vessel.mean()),
        "stray": float(stray.mean()),
        "true_pieces": float(true_pieces.mean()),
        "unbroken": float(np.mean(on_vessel == 1)),
        "foreground": float(predicted.mean()),
    }


def train(loss_fn, params: Params, data, steps: int, seed: int, desc: str) -> Params:
    """Adam on ``loss_fn(forward(params, images), labels, step / steps)``.

    Args:
      loss_fn: one of :data:`LOSSES`.
      params: the initial parameters.
      data: ``(images, labels)`` training arrays.
      steps: number of steps.
      seed: seed of the batch order (the same for every loss).
      desc: the progress bar's label.

    Returns:
      The trained parameters.
    """
    optimizer = optax.adam(optax.cosine_decay_schedule(LEARNING_RATE, steps))

    @jax.jit
    def step(params, opt_state, images, labels, progress):
        loss, grads = jax.value_and_grad(lambda p: loss_fn(forward(p, images), labels, progress))(
            params
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    images, labels = data
    opt_state = optimizer.init(params)
    rng = np.random.default_rng([seed, 3])
    bar = tqdm(batches(rng, len(images), BATCH_SIZE, steps), total=steps, desc=desc, leave=False)
    for i, index in enumerate(bar):
        progress = jnp.float32(i / max(steps - 1, 1))
        params, opt_state, loss = step(params, opt_state, images[index], labels[index], progress)
        if (i + 1) % 50 == 0 or i + 1 == steps:
            if not np.isfinite(float(loss)):
                raise FloatingPointError(f"{desc}: the training loss became NaN or inf")
            bar.set_postfix(loss=f"{float(loss):.4f}")
    return params


def draw_masks(images, labels, predictions: dict[str, np.ndarray], out: str) -> None:
    """A grid: test images, their truth, and each loss's mask with hits, false alarms, misses."""
    names = list(predictions)
    n_rows = len(images)
    fig, axes = plt.subplots(n_rows, 2 + len(names), figsize=(1.8 * (2 + len(names)), 1.9 * n_rows))
    for row in range(n_rows):
        truth = labels[row] == 1
        axes[row, 0].imshow(images[row, ..., 0], cmap="gray")
        axes[row, 1].imshow(truth, cmap="gray", vmin=0, vmax=1)
        for col, name in enumerate(names, start=2):
            pred = predictions[name][row]
            rgb = np.zeros((*truth.shape, 3))
            rgb[pred & truth] = (1.0, 1.0, 1.0)  # hit
            rgb[pred & ~truth] = (1.0, 0.2, 0.2)  # false alarm
            rgb[~pred & truth] = (0.2, 0.5, 1.0)  # miss
            axes[row, col].imshow(rgb)
    titles = ["test image", "truth", *(name.replace(" + ", "\n+ ") for name in names)]
    for col, title in enumerate(titles):
        axes[0, col].set_title(title, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        "Predicted vessels on test images: white = hit, red = false alarm, blue = missed",
        fontsize=11,
    )
    fig.tight_layout()
    save_figure(fig, out, "thin_structures")


def draw_scatter(results: dict[str, dict[str, float]], out: str) -> None:
    """Two panels per loss: Dice against HD95, and clDice against the vessel's pieces."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    markers = "os^vDPX"
    for k, (name, s) in enumerate(results.items()):
        for ax, x, y in ((left, "dice", "hd95"), (right, "cldice", "on_vessel")):
            ax.scatter(s[x], s[y], s=50, marker=markers[k % len(markers)], label=name)
    left.set(
        xlabel="Dice (pooled, higher is better)",
        ylabel="HD95 in pixels (mean per image, lower is better)",
        title="Pixel overlap vs boundary distance",
    )
    right.axhline(1.0, color="grey", linestyle=":", label="unbroken: 1 piece")
    right.set(
        xlabel="clDice (mean per image, higher is better)",
        ylabel="predicted pieces touching the vessel (mean per image)",
        title="Centre-line overlap vs broken vessels",
    )
    left.legend(fontsize=8)
    right.legend(handles=right.lines, fontsize=8, loc="upper right")
    fig.tight_layout()
    save_figure(fig, out, "thin_structures_scores")


def main() -> None:
    """Trains one network per loss, prints the scores, draws the masks and the scores."""

    def extra(parser):
        parser.add_argument("--steps", type=int, help="steps per loss (default 500; quick: 60)")

    args = parse_args(__doc__, extra)
    steps = args.steps or (60 if args.quick else 500)
    started = time.perf_counter()

    train_data = make_images(np.random.default_rng([args.seed, 0]), NUM_TRAIN)
    test_data = make_images(np.random.default_rng([args.seed, 1]), NUM_TEST)
    print(
        f"{NUM_TRAIN} train / {NUM_TEST} test images of {SIZE}x{SIZE}; vessels cover "
        f"{100 * train_data[1].mean():.2f}% of the training pixels"
    )
    initial = init_params(jax.random.PRNGKey(args.seed))

    results, predictions, seconds = {}, {}, {}
    for name, loss_fn in LOSSES.items():
        start = time.perf_counter()
        params = train(loss_fn, initial, train_data, steps, args.seed, name)
        predictions[name] = np.asarray(predict(params, test_data[0]))
        seconds[name] = time.perf_counter() - start
        results[name] = scores(predictions[name], test_data[1])

    rows = [
        [
            name,
            f"{s['dice']:.3f}",
            f"{s['image_dice']:.3f}",
            f"{s['cldice']:.3f}",
            f"{s['hd95']:.2f}",
            f"{s['on_vessel']:.2f}",
            f"{100 * s['unbroken']:.0f}%",
            f"{s['stray']:.2f}",
            f"{100 * s['foreground']:.2f}%",
            f"{seconds[name]:.0f}",
        ]
        for name, s in results.items()
    ]
    table = markdown_table(
        [
            "training loss",
            "Dice (pooled)",
            "Dice (mean per image)",
            "clDice (mean per image)",
            "HD95, px (mean per image)",
            "pieces on the vessel",
            "vessels unbroken",
            "stray pieces",
            "predicted vessel",
            "train + predict, s",
        ],
        rows,
    )
    empty = ", ".join(f"{name} {s['empty']}" for name, s in results.items() if s["empty"])
    truth_pieces = results["Dice"]["true_pieces"]
    notes = (
        f"{NUM_TEST} test images, {100 * test_data[1].mean():.2f}% of their pixels vessel, "
        f"{truth_pieces:.2f} connected piece per image in the truth; {steps} Adam steps of "
        f"{BATCH_SIZE} images per loss, same initial weights and batches; vessel = "
        "probability > 0.5. clDice: skeletons by Zhang-Suen thinning. HD95: larger directed "
        "95th percentile of the outline distances (jaxloss.distance_transform), an empty "
        "prediction scored as the diagonal (empty predictions: "
        + (empty or "none")
        + ")"
        + ". Pieces: 8-connected components of the predicted mask, on the vessel if they "
        "touch a true vessel pixel (1 = unbroken), stray if not. Train + predict: "
        "seconds on this machine, compilation included."
    )
    report(
        args.out,
        "thin_structures",
        "Segmenting thin vessels: pixel, boundary and topology scores on the test set, per loss",
        table,
        started,
        notes,
    )

    shown = np.arange(4)
    draw_masks(
        test_data[0][shown],
        test_data[1][shown],
        {name: p[shown] for name, p in predictions.items()},
        args.out,
    )
    draw_scatter(results, args.out)

    if results["Dice"]["dice"] < MIN_DICE:
        raise SystemExit(
            f"the Dice-trained model reached a pooled test Dice of {results['Dice']['dice']:.3f}, "
            f"below {MIN_DICE}"
        )


if __name__ == "__main__":
    main()
