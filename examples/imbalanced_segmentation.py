"""Segment objects covering 1% of the pixels with ``jaxloss.dice``, ``tversky`` and focal loss.

What it shows: why segmenters of small structures are trained with overlap losses. In a scan
where a tumour covers a tiny fraction of the pixels, a per-pixel cross-entropy is an average
over pixels that are almost all background: predicting "background everywhere" already
scores 99% pixel accuracy, and the few foreground pixels barely move the gradient.
``jaxloss.dice`` and ``jaxloss.tversky`` are ratios of sums over each image's pixels, so the
object's class weighs as much as the background however small it is;
``jaxloss.softmax_focal`` keeps the per-pixel form but silences the easy background pixels.
The script trains the same small network with each loss and compares the masks they give.

Data (synthetic, generated here from ``--seed``): 40x40 grey images of a smooth random
texture (standard deviation 1) plus pixel noise (standard deviation 0.5), each holding one
or two small ellipses whose total area is about 1% of the image (16 pixels; the lecture's
0.1% tumour would be under two pixels at this size, and a CPU example needs small images).
An ellipse adds 2 to the brightness, which makes it about as bright as the texture's own
bright patches: a pixel's value says little, and the network has to recognize a small
compact spot in its neighbourhood. 1,000 training and 200 test images.

The model is a fully convolutional network in plain JAX (``jax.lax.conv_general_dilated``):
three 3x3 convolutions with 8 channels (the second and third dilated by 2 and 4, so each
output sees a 15x15 window) and a 1x1 convolution to two logits per pixel (background,
object), channels last. Every loss gets the same initial weights, batches (16 images),
optimizer (Adam, learning rate 3e-3 with a cosine decay to 0) and number of steps:

* ``jaxloss.cross_entropy`` on the logits and the integer label maps;
* the same with ``class_weights=(1, 10)``, the usual cheap fix for imbalance;
* ``jaxloss.softmax_focal`` with ``gamma=2`` (no class weights);
* ``jaxloss.dice`` on the softmax probabilities, ``include_background=False`` (only the
  object's overlap is scored);
* ``jaxloss.tversky`` with ``alpha=0.3, beta=0.7`` (misses cost more than false alarms),
  also without the background class.

A pixel is predicted foreground where its object probability exceeds 0.5 (the argmax). The
table scores the 200 test images: the foreground Dice pooled over the test set (true
positives, false positives and misses summed over all test pixels) after a tenth of the
steps, which shows how fast each loss finds the objects, and for the final model the
pooled Dice and IoU, the mean of each image's Dice, precision, recall, the share of pixels
predicted foreground (the truth is about 1%), the pixel accuracy and the share of test
objects (connected regions of the truth) that at least one predicted pixel touches. A
second figure follows the pooled test Dice during training.

What to look for: how quickly each loss starts to find the objects (the early column and
the curves), and the precision/recall trade each one makes (cross-entropy and focal loss
predict fewer foreground pixels than there are, class-weighted cross-entropy many more,
Dice and Tversky about the right amount). Trained to the end, the losses land close enough
that their order by final Dice changes with ``--seed``; the early gap does not.

The script fails if the Dice-trained model's pooled test Dice is below 0.1, even with
``--quick`` (predicting "background everywhere" scores 0 and a random 1% mask about 0.01;
both are rows of the table).

Run it from the repository root::

    .venv/bin/python examples/imbalanced_segmentation.py            # 1,500 steps per loss
    .venv/bin/python examples/imbalanced_segmentation.py --quick    # 150 steps per loss
    .venv/bin/python examples/imbalanced_segmentation.py --steps 3000 --seed 1
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

SIZE = 40
OBJECT_FRACTION = 0.01
TEXTURE_SCALE = 3.0  # Gaussian blur of the background texture, in pixels
NOISE = 0.5  # pixel noise, relative to the texture's standard deviation
CONTRAST = 2.0  # added brightness of an object's interior
NUM_TRAIN, NUM_TEST = 1000, 200
WIDTH = 8
# (kernel size, input channels, output channels, dilation)
LAYERS = [(3, 1, WIDTH, 1), (3, WIDTH, WIDTH, 2), (3, WIDTH, WIDTH, 4), (1, WIDTH, 2, 1)]
BATCH_SIZE = 16
LEARNING_RATE = 3e-3
MIN_DICE = 0.1  # the pooled test Dice the Dice-trained model must reach, even with --quick

Params = dict[str, dict[str, jax.Array]]


def make_images(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy textured images with one or two small bright ellipses, and their masks.

    Args:
      rng: the NumPy generator that draws everything.
      n: number of images.

    Returns:
      ``(images [n, SIZE, SIZE, 1] float32, labels [n, SIZE, SIZE] int32)``, labels 1 inside
      an ellipse and 0 elsewhere.
    """
    rows, cols = np.mgrid[:SIZE, :SIZE].astype(np.float64)
    images = np.empty((n, SIZE, SIZE, 1), np.float32)
    labels = np.empty((n, SIZE, SIZE), np.int32)
    for i in range(n):
        texture = ndimage.gaussian_filter(rng.normal(size=(SIZE, SIZE)), TEXTURE_SCALE, mode="wrap")
        image = texture / texture.std() + NOISE * rng.normal(size=(SIZE, SIZE))
        count = rng.integers(1, 3)
        mask = np.zeros((SIZE, SIZE), bool)
        for _ in range(count):
            area = OBJECT_FRACTION * SIZE * SIZE / count * rng.uniform(0.7, 1.3)
            elongation = rng.uniform(1.0, 2.0)
            major = np.sqrt(area / np.pi * elongation)
            minor = area / (np.pi * major)
            center_row, center_col = rng.uniform(4, SIZE - 4, size=2)
            angle = rng.uniform(0, np.pi)
            u = (cols - center_col) * np.cos(angle) + (rows - center_row) * np.sin(angle)
            v = (rows - center_row) * np.cos(angle) - (cols - center_col) * np.sin(angle)
            mask |= (u / major) ** 2 + (v / minor) ** 2 <= 1
        # A slightly soft edge, as a real lesion's; the label is the sharp ellipse.
        image += CONTRAST * ndimage.gaussian_filter(mask.astype(np.float64), 0.7)
        images[i, ..., 0] = image
        labels[i] = mask
    return images, labels


def init_params(key: jax.Array) -> Params:
    """He-normal convolution kernels (HWIO) and zero biases for :data:`LAYERS`."""
    return conv_init(key, LAYERS)


def forward(params: Params, images: jax.Array) -> jax.Array:
    """``[batch, height, width, 2]`` logits (background, object) of images
    ``[batch, height, width, 1]``: the network of :data:`LAYERS`."""
    return conv_apply(params, images, LAYERS)


# Each loss maps (logits [batch, h, w, 2], labels [batch, h, w] int) to a scalar.
LOSSES = {
    "cross-entropy": lambda logits, labels: jaxloss.cross_entropy(logits, labels),
    "cross-entropy, class_weights=(1, 10)": lambda logits, labels: jaxloss.cross_entropy(
        logits, labels, class_weights=jnp.array([1.0, 10.0])
    ),
    "focal (gamma=2)": lambda logits, labels: jaxloss.softmax_focal(logits, labels, gamma=2.0),
    "Dice": lambda logits, labels: jaxloss.dice(
        jax.nn.softmax(logits), labels, include_background=False
    ),
    "Tversky (alpha=0.3, beta=0.7)": lambda logits, labels: jaxloss.tversky(
        jax.nn.softmax(logits), labels, alpha=0.3, beta=0.7, include_background=False
    ),
}


@jax.jit
def predict(params: Params, images: jax.Array) -> jax.Array:
    """``[batch, h, w]`` bool: object probability above 0.5 (the argmax of the two logits)."""
    return jnp.argmax(forward(params, images), axis=-1) == 1


def counts(predicted: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-image true positives, false positives and misses of the foreground."""
    truth = labels == 1
    axes = (1, 2)
    return (
        np.sum(predicted & truth, axis=axes),
        np.sum(predicted & ~truth, axis=axes),
        np.sum(~predicted & truth, axis=axes),
    )


def pooled_dice(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Foreground Dice with the counts summed over all images."""
    tp, fp, fn = (c.sum() for c in counts(predicted, labels))
    return float(2 * tp / max(2 * tp + fp + fn, 1))


def scores(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The table's foreground scores of binary predictions ``[n, h, w]``."""
    tp, fp, fn = counts(predicted, labels)
    found = total = 0
    for pred, label in zip(predicted, labels, strict=True):
        regions, n_regions = ndimage.label(label == 1)
        total += n_regions
        found += len(np.setdiff1d(np.unique(regions[pred]), [0]))
    per_image_dice = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    return {
        "dice": 2 * tp / max(2 * tp + fp + fn, 1),
        "iou": tp / max(tp + fp + fn, 1),
        "image_dice": float(per_image_dice.mean()),
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(tp + fn, 1),
        "foreground": float(predicted.mean()),
        "accuracy": float(np.mean(predicted == (labels == 1))),
        "objects": found / total,
    }


def train(loss_fn, params: Params, data, test, steps: int, eval_at: set[int], seed: int, desc: str):
    """Adam on ``loss_fn(forward(params, images), labels)``, scoring the test set as it goes.

    Args:
      loss_fn: one of :data:`LOSSES`.
      params: the initial parameters.
      data: ``(images, labels)`` training arrays.
      test: ``(images, labels)`` test arrays.
      steps: number of steps.
      eval_at: the steps after which the test Dice is measured (and the loss checked).
      seed: seed of the batch order (the same for every loss).
      desc: the progress bar's label.

    Returns:
      ``(params, history)``: the trained parameters and ``[(step, pooled test Dice), ...]``.
    """
    optimizer = optax.adam(optax.cosine_decay_schedule(LEARNING_RATE, steps))

    @jax.jit
    def step(params, opt_state, images, labels):
        loss, grads = jax.value_and_grad(lambda p: loss_fn(forward(p, images), labels))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    images, labels = data
    opt_state = optimizer.init(params)
    rng = np.random.default_rng([seed, 3])
    history = [(0, pooled_dice(np.asarray(predict(params, test[0])), test[1]))]
    bar = tqdm(batches(rng, len(images), BATCH_SIZE, steps), total=steps, desc=desc, leave=False)
    for i, index in enumerate(bar, start=1):
        params, opt_state, loss = step(params, opt_state, images[index], labels[index])
        if i in eval_at:
            if not np.isfinite(float(loss)):
                raise FloatingPointError(f"{desc}: the training loss became NaN or inf")
            history.append((i, pooled_dice(np.asarray(predict(params, test[0])), test[1])))
            bar.set_postfix(loss=f"{float(loss):.4f}", test_dice=f"{history[-1][1]:.3f}")
    return params, history


def draw_masks(images, labels, predictions: dict[str, np.ndarray], out: str) -> None:
    """A grid: test images, their truth, and each loss's mask with hits, false alarms, misses."""
    names = list(predictions)
    n_rows = len(images)
    fig, axes = plt.subplots(n_rows, 2 + len(names), figsize=(2.0 * (2 + len(names)), 2.1 * n_rows))
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
    titles = ["test image", "truth"]
    titles += [name.replace(", class", "\nclass").replace(" (", "\n(") for name in names]
    for col, title in enumerate(titles):
        axes[0, col].set_title(title, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        "Predicted object masks on test images: white = hit, red = false alarm, blue = missed",
        fontsize=11,
    )
    fig.tight_layout()
    save_figure(fig, out, "imbalanced_segmentation")


def main() -> None:
    """Trains one network per loss, prints the scores, draws the masks and the curves."""

    def extra(parser):
        parser.add_argument("--steps", type=int, help="steps per loss (default 1500; quick: 150)")

    args = parse_args(__doc__, extra)
    steps = args.steps or (150 if args.quick else 1500)
    early = max(steps // 10, 1)
    eval_at = {*range(max(steps // 20, 15), steps + 1, max(steps // 20, 15)), early, steps}
    started = time.perf_counter()

    train_data = make_images(np.random.default_rng([args.seed, 0]), NUM_TRAIN)
    test_data = make_images(np.random.default_rng([args.seed, 1]), NUM_TEST)
    print(
        f"{NUM_TRAIN} train / {NUM_TEST} test images of {SIZE}x{SIZE}; objects cover "
        f"{100 * train_data[1].mean():.2f}% of the training pixels"
    )
    initial = init_params(jax.random.PRNGKey(args.seed))

    results, histories, predictions = {}, {}, {}
    for name, loss_fn in LOSSES.items():
        params, histories[name] = train(
            loss_fn, initial, train_data, test_data, steps, eval_at, args.seed, name
        )
        predictions[name] = np.asarray(predict(params, test_data[0]))
        results[name] = scores(predictions[name], test_data[1])

    random_mask = np.random.default_rng([args.seed, 2]).random(test_data[1].shape)
    baselines = {
        "(background everywhere)": np.zeros(test_data[1].shape, dtype=bool),
        "(random 1% of the pixels)": random_mask < OBJECT_FRACTION,
    }
    rows = []
    for name, s in [
        *results.items(),
        *((name, scores(mask, test_data[1])) for name, mask in baselines.items()),
    ]:
        early_dice = f"{dict(histories[name])[early]:.3f}" if name in histories else "—"
        rows.append(
            [
                name,
                early_dice,
                f"{s['dice']:.3f}",
                f"{s['iou']:.3f}",
                f"{s['image_dice']:.3f}",
                f"{s['precision']:.3f}",
                f"{s['recall']:.3f}",
                f"{100 * s['foreground']:.2f}%",
                f"{100 * s['accuracy']:.2f}%",
                f"{100 * s['objects']:.0f}%",
            ]
        )
    table = markdown_table(
        [
            "training loss",
            f"Dice (pooled) after {early} steps",
            f"Dice (pooled) after {steps} steps",
            "IoU (pooled)",
            "Dice (mean per image)",
            "precision",
            "recall",
            "predicted foreground",
            "pixel accuracy",
            "objects touched",
        ],
        rows,
    )
    notes = (
        f"{NUM_TEST} test images, {100 * test_data[1].mean():.2f}% of their pixels foreground; "
        f"{steps} Adam steps of {BATCH_SIZE} images per loss, same initial weights and batches; "
        "foreground = object probability > 0.5. Pooled: true positives, false positives and "
        "misses summed over the test set before the ratio. Columns after the second: the "
        "final model. Objects touched: connected regions of the truth that at least one "
        "predicted pixel touches."
    )
    report(
        args.out,
        "imbalanced_segmentation",
        "Segmenting objects that cover 1% of the pixels: foreground scores on the test set",
        table,
        started,
        notes,
    )

    shown = np.arange(5)
    draw_masks(
        test_data[0][shown],
        test_data[1][shown],
        {name: p[shown] for name, p in predictions.items()},
        args.out,
    )

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, history in histories.items():
        step_numbers, dice_values = zip(*history, strict=True)
        ax.plot(step_numbers, dice_values, marker="o", markersize=3, label=name)
    ax.set(
        xlabel="training step",
        ylabel="foreground Dice on the test set (pooled)",
        ylim=(0, 1),
        title="Test Dice during training, per loss",
    )
    ax.legend(fontsize=8)
    save_figure(fig, args.out, "imbalanced_segmentation_curves")

    if results["Dice"]["dice"] < MIN_DICE:
        raise SystemExit(
            f"the Dice-trained model reached a pooled test Dice of {results['Dice']['dice']:.3f}, "
            f"below {MIN_DICE}"
        )


if __name__ == "__main__":
    main()
