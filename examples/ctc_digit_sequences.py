"""Read digit strings off "video" frames with ``jaxloss.ctc``, decoding greedily
(``jaxloss.ctc_greedy_decode``) and by prefix beam search (``jaxloss.ctc_beam_search``).

What it shows: sequence labelling without frame labels. A camera films someone showing
digits one after another: each digit stays in view for a few frames, sometimes an empty
frame comes between two digits, and all we are told is the string, say "3 3 5", not which
frame shows what. CTC trains a frame classifier from such strings alone: it sums over every
way of spreading the string over the frames, with an extra *blank* class for "no new
digit here". Reading is greedy (best-path) decoding: the most likely class per frame,
repeats merged, blanks dropped. Two equal digits in a row therefore only come out as two
if the model puts a blank between them. Prefix beam search (8 prefixes) reads the same
posteriors for the most probable *string* instead, summing the probabilities of all the
frame paths that spell it, which the single best path ignores.

Data (honest synthetic, from scikit-learn's 8x8 handwritten digits, shipped, nothing
downloaded): the *images* are split 70/30 into train and test images first, so the test
sequences only show handwriting never seen in training. A sequence is 2-5 digits; each
next digit repeats the previous one with probability 0.25 (else uniform over the other
nine), so repeats are common enough to learn and to measure. Each digit is one image held
for 1-4 frames; every frame adds its own pixel noise (σ = 0.1 on pixels in [0, 1]). Between
two digits come 0-2 blank frames (noise only), and 0-2 before the first and after the last.
The hard case is allowed: two equal digits may touch, with no blank frame between them;
they are then two *different* images of that digit, and the second is held at least 2
frames, so the string still fits the frames and the model can spend the first frame of the
new image on the blank. Sequences are padded to 32 frames and their true lengths go to the
loss and the decoder. Training draws fresh sequences from the train images every step; the
evaluation sets are fixed (test: from the test images; train: from the train images).

Model (plain JAX, parameters a dict pytree): each frame is embedded by an MLP (64 -> 128 ->
64), then two 1-D convolutions over time (128 channels, kernel 3, so each output sees 2
frames either side; ``jax.lax.conv_general_dilated``) and a linear layer give K = 11
logits per frame: digits 0-9 are classes 0-9 and the blank is class 10 (``blank=10``).
The same network with kernel 1 (each frame alone) is trained too, as the per-frame
baseline: it cannot tell where one image of a digit ends and the next begins, so touching
repeats defeat it. Both train on ``jaxloss.ctc`` with its default ``"mean"`` reduction
(torch's: each sequence's loss divided by its number of digits, then averaged), by
``optax.adam`` with a cosine-decayed learning rate, on the same batches.

The result table gives, per model and decoder (greedy, beam search), the sequence accuracy
(the whole string right) and the character error rate (CER: edit distances summed over the
sequences, divided by the summed true lengths) on 1,000 held-out test sequences and on
1,000 train sequences, and the sequence accuracy on the test sequences that contain
touching repeats. The figure shows the frames of one test sequence with touching repeats
(the first that the context model reads right and the per-frame model does not, greedily)
and under them each model's per-frame posteriors (classes × time), with the greedily
decoded strings; ``ctc_digit_sequences_loss.png`` shows the training losses. The full run
fails if the context model reads under half of the test strings right, or is not at least
0.2 better than the per-frame model on touching repeats, or if beam search reads fewer test
strings right than greedy decoding; ``--quick`` only checks that the loss fell to under
half its starting value.

Run it from the repository root::

    .venv/bin/python examples/ctc_digit_sequences.py --quick   # a short run, for CI
    .venv/bin/python examples/ctc_digit_sequences.py           # the full run
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from _common import (
    digits,
    fit,
    markdown_table,
    mlp_apply,
    mlp_init,
    parse_args,
    report,
    save_figure,
)
from sklearn.model_selection import train_test_split

import jaxloss

NAME = "ctc_digit_sequences"
BLANK = 10
NUM_CLASSES = 11
MIN_DIGITS, MAX_DIGITS = 2, 5
MAX_HOLD = 4  # frames a digit stays in view: 1..MAX_HOLD
MAX_GAP = 2  # blank frames between digits and at either end: 0..MAX_GAP
REPEAT_PROBABILITY = 0.25
NOISE = 0.1
NUM_FRAMES = 2 * MAX_GAP + MAX_DIGITS * MAX_HOLD + (MAX_DIGITS - 1) * MAX_GAP  # 32
HIDDEN = 128
EMBEDDING = 64
BATCH = 64
LEARNING_RATE = 3e-3
BEAM_WIDTH = 8
DECODERS = ("greedy", f"beam {BEAM_WIDTH}")  # the table's order (pytrees sort dict keys)
NUM_EVAL = 1000


def make_sequences(rng, images, labels, count):
    """Draws ``count`` digit sequences shown as noisy frames, padded to ``NUM_FRAMES``.

    Args:
      rng: a NumPy generator.
      images: ``[n, 64]`` pixels in [0, 1], the pool the digits' images come from.
      labels: ``[n]`` their digits.
      count: number of sequences.

    Returns:
      ``(frames [count, NUM_FRAMES, 64] float32, frame_counts [count] int32,
      strings [count, MAX_DIGITS] int32 padded with -1, string_lengths [count] int32,
      touching [count] bool)``; ``touching`` marks the sequences in which two equal digits
      follow each other with no blank frame between them.
    """
    by_digit = [np.flatnonzero(labels == d) for d in range(10)]
    frames = np.zeros((count, NUM_FRAMES, images.shape[1]), np.float32)
    frame_counts = np.zeros(count, np.int32)
    strings = np.full((count, MAX_DIGITS), -1, np.int32)
    string_lengths = np.zeros(count, np.int32)
    touching = np.zeros(count, bool)
    for i in range(count):
        length = rng.integers(MIN_DIGITS, MAX_DIGITS + 1)
        string = [rng.integers(10)]
        for _ in range(length - 1):
            if rng.random() < REPEAT_PROBABILITY:
                string.append(string[-1])
            else:
                string.append((string[-1] + rng.integers(1, 10)) % 10)
        t = rng.integers(MAX_GAP + 1)  # leading blank frames stay zeros plus noise
        previous_image = -1
        for j, digit in enumerate(string):
            gap = rng.integers(MAX_GAP + 1) if j > 0 else 0
            hold = rng.integers(1, MAX_HOLD + 1)
            image = rng.choice(by_digit[digit])
            if j > 0 and gap == 0 and digit == string[j - 1]:
                touching[i] = True
                hold = max(hold, 2)  # room for the blank the decoder needs
                while image == previous_image:  # a visibly new image of the same digit
                    image = rng.choice(by_digit[digit])
            t += gap
            frames[i, t : t + hold] = images[image]
            t += hold
            previous_image = image
        t += rng.integers(MAX_GAP + 1)
        frames[i, :t] += NOISE * rng.standard_normal((t, images.shape[1]), dtype=np.float32)
        frame_counts[i] = t
        strings[i, :length] = string
        string_lengths[i] = length
    return frames, frame_counts, strings, string_lengths, touching


def init_params(key, kernel):
    """The frame embedder, two temporal convolutions of width ``kernel`` and the output layer."""
    keys = jax.random.split(key, 4)

    def conv(k, n_in, n_out):
        w = jax.random.normal(k, (kernel, n_in, n_out)) * jnp.sqrt(2.0 / (kernel * n_in))
        return {"w": w, "b": jnp.zeros((n_out,))}

    return {
        "embed": mlp_init(keys[0], [64, HIDDEN, EMBEDDING]),
        "conv0": conv(keys[1], EMBEDDING, HIDDEN),
        "conv1": conv(keys[2], HIDDEN, HIDDEN),
        "out": mlp_init(keys[3], [HIDDEN, NUM_CLASSES])["layer0"],
    }


def conv_time(layer, x):
    """A 'same'-padded 1-D convolution over time: ``[B, T, C_in] -> [B, T, C_out]``."""
    y = jax.lax.conv_general_dilated(
        x, layer["w"], window_strides=(1,), padding="SAME", dimension_numbers=("NWC", "WIO", "NWC")
    )
    return y + layer["b"]


def frame_logits(params, frames):
    """Per-frame class scores ``[B, T, NUM_CLASSES]`` for frames ``[B, T, 64]``."""
    h = jax.nn.relu(mlp_apply(params["embed"], frames))
    h = jax.nn.relu(conv_time(params["conv0"], h))
    h = jax.nn.relu(conv_time(params["conv1"], h))
    return h @ params["out"]["w"] + params["out"]["b"]


def loss_fn(params, frames, frame_counts, strings, string_lengths):
    """CTC loss of a batch, torch's length-normalized mean."""
    return jaxloss.ctc(
        frame_logits(params, frames),
        strings,
        logit_lengths=frame_counts,
        label_lengths=string_lengths,
        blank=BLANK,
    )


@jax.jit
def decode(params, frames, frame_counts):
    """Greedy and beam-search CTC decoding, plus the per-frame posteriors for the figure.

    Returns:
      ``({decoder: (tokens [B, NUM_FRAMES] padded with -1, lengths [B])}, posteriors)``.
    """
    logits = frame_logits(params, frames)
    greedy = jaxloss.ctc_greedy_decode(logits, logit_lengths=frame_counts, blank=BLANK)
    tokens, lengths, _ = jaxloss.ctc_beam_search(
        logits, logit_lengths=frame_counts, beam_width=BEAM_WIDTH, blank=BLANK
    )
    decoded = dict(zip(DECODERS, [greedy, (tokens[:, 0], lengths[:, 0])], strict=True))
    return decoded, jax.nn.softmax(logits, axis=-1)


def edit_distance(a, b):
    """Levenshtein distance between two short sequences."""
    row = np.arange(len(b) + 1)
    for i, x in enumerate(a, start=1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return int(row[-1])


def evaluate(params, data):
    """Greedy and beam-search decoding of ``data`` (from :func:`make_sequences`), scored.

    Returns:
      Per decoder (``"greedy"``, ``"beam 8"``) a dict: ``correct`` ``[n]`` bool (the whole
      string right), ``accuracy`` (its mean), ``cer`` (edit distances summed over the
      sequences / summed true lengths) and ``touching`` (the accuracy on the sequences
      with touching repeats).
    """
    frames, frame_counts, strings, string_lengths, touching = data
    decoded, _ = jax.device_get(decode(params, frames, frame_counts))
    scores = {}
    for decoder in DECODERS:
        tokens, lengths = decoded[decoder]
        correct, errors = np.zeros(len(frames), bool), 0
        for i in range(len(frames)):
            read = tokens[i, : lengths[i]].tolist()
            truth = strings[i, : string_lengths[i]].tolist()
            correct[i] = read == truth
            errors += edit_distance(read, truth)
        scores[decoder] = {
            "correct": correct,
            "accuracy": float(correct.mean()),
            "cer": errors / float(string_lengths.sum()),
            "touching": float(correct[touching].mean()),
        }
    return scores


def training_batches(rng, images, labels):
    """Endless batches of fresh sequences from the training images."""
    while True:
        frames, frame_counts, strings, string_lengths, _ = make_sequences(
            rng, images, labels, BATCH
        )
        yield frames, frame_counts, strings, string_lengths


def text(sequence):
    """Digits as a spaced string, e.g. ``"3 3 5"``."""
    return " ".join(str(d) for d in sequence) or "(nothing)"


def plot_example(out, data, read_right, models, names):
    """The frames of one test sequence with touching repeats, and each model's posteriors.

    The sequence is the first one of at least 3 digits with touching repeats that the first
    model reads right and the second does not (``read_right``: a ``[n]`` bool array per
    model), or else the first such sequence.
    """
    frames, frame_counts, strings, string_lengths, touching = data
    candidates = touching & (string_lengths >= 3)
    contrast = candidates & read_right[0] & ~read_right[1]
    shown_contrast = bool(np.any(contrast))
    i = int(np.flatnonzero(contrast if shown_contrast else candidates)[0])
    count = int(frame_counts[i])
    truth = text(strings[i, : string_lengths[i]])
    fig, axes = plt.subplots(
        1 + len(models),
        1,
        figsize=(0.5 * count + 2.0, 1.6 + 2.6 * len(models)),
        gridspec_kw={"height_ratios": [1.0] + [2.2] * len(models)},
        layout="constrained",
    )
    strip = np.concatenate([f.reshape(8, 8) for f in frames[i, :count]], axis=1)
    axes[0].imshow(
        strip, cmap="gray_r", vmin=0, vmax=1, extent=(-0.5, count - 0.5, 0, 1), aspect="auto"
    )
    axes[0].set_box_aspect(1 / count)  # square frames, as wide as the heat maps' columns
    for boundary in np.arange(count - 1) + 0.5:
        axes[0].axvline(boundary, color="tab:blue", linewidth=1)
    axes[0].set_xlim(-0.5, count - 0.5)
    axes[0].set_xticks(range(count))
    axes[0].set_yticks([])
    which = " that the context model reads right and the per-frame one not" * shown_contrast
    axes[0].set_title(
        f"frames of a held-out test sequence, true string {truth}: the first one with touching\n"
        f"repeats{which}"
    )
    for ax, params, name in zip(axes[1:], models, names, strict=True):
        reads, posteriors = decode(params, frames[i : i + 1], frame_counts[i : i + 1])
        tokens, lengths = reads["greedy"]
        decoded = text(np.asarray(tokens[0, : int(lengths[0])]))
        image = ax.imshow(
            np.asarray(posteriors[0, :count]).T,
            cmap="viridis",
            vmin=0,
            vmax=1,
            aspect="auto",
            interpolation="nearest",
        )
        best = np.argmax(np.asarray(posteriors[0, :count]), axis=-1)
        ax.scatter(range(count), best, marker="x", color="red", s=20)
        ax.set_yticks(range(NUM_CLASSES), [str(d) for d in range(10)] + ["blank"])
        ax.set_xticks(range(count))
        ax.set_xlabel("frame (red ×: the most likely class, which greedy decoding reads)")
        ax.set_ylabel("class")
        verdict = "right" if decoded == truth else "wrong"
        ax.set_title(f"{name}: greedy decoding reads {decoded} ({verdict}; true {truth})")
        fig.colorbar(image, ax=ax, label="posterior", pad=0.01)
    save_figure(fig, out, NAME)


def plot_losses(out, losses, names):
    """The training losses (running means over 2% of the steps), log scale."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
    for curve, name in zip(losses, names, strict=True):
        window = max(1, len(curve) // 50)
        smooth = np.convolve(curve, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(len(smooth)) + window - 1, smooth, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("CTC loss per digit (running mean)")
    ax.set_title("training loss, jaxloss.ctc (mean over the batch)")
    ax.legend()
    save_figure(fig, out, f"{NAME}_loss")


def main() -> None:
    """Builds the sequences, trains both models, reports and plots."""
    args = parse_args(__doc__)
    started = time.perf_counter()
    steps = 200 if args.quick else 3000
    rng = np.random.default_rng(args.seed)

    images, labels = digits(standardize=False)
    train_images, test_images, train_labels, test_labels = train_test_split(
        images, labels, test_size=0.3, random_state=args.seed, stratify=labels
    )
    test = make_sequences(rng, test_images, test_labels, NUM_EVAL)
    train = make_sequences(rng, train_images, train_labels, NUM_EVAL)
    print(
        f"{len(train_images)} train / {len(test_images)} test images; "
        f"{NUM_EVAL} test sequences, {int(test[4].sum())} with touching repeats"
    )

    names = ["temporal conv (5-frame context)", "per-frame (no context)"]
    key = jax.random.PRNGKey(args.seed)
    models, losses, rows, test_correct = [], [], [], []
    for name, kernel in zip(names, [3, 1], strict=True):
        params = init_params(key, kernel)
        data = training_batches(np.random.default_rng(args.seed + 1), train_images, train_labels)
        params, curve = fit(
            loss_fn,
            params,
            data,
            optax.adam(optax.cosine_decay_schedule(LEARNING_RATE, steps)),
            steps,
            name,
        )
        on_test, on_train = evaluate(params, test), evaluate(params, train)
        for decoder in DECODERS:
            rows.append(
                [
                    name,
                    decoder,
                    on_test[decoder]["accuracy"],
                    on_test[decoder]["cer"],
                    on_test[decoder]["touching"],
                    on_train[decoder]["accuracy"],
                    on_train[decoder]["cer"],
                    float(curve[-50:].mean()),
                ]
            )
        models.append(params)
        losses.append(curve)
        test_correct.append(on_test["greedy"]["correct"])

    table = markdown_table(
        [
            "model",
            "decoding",
            "test seq. accuracy",
            "test CER",
            "test seq. accuracy, touching repeats",
            "train seq. accuracy",
            "train CER",
            "final train loss",
        ],
        rows,
    )
    report(
        args.out,
        NAME,
        f"Reading 2-5 digit strings from noisy frames, trained with jaxloss.ctc, {steps} steps "
        f"of {BATCH} sequences; greedy decoding and prefix beam search ({BEAM_WIDTH} prefixes, "
        f"the best string) on {NUM_EVAL} sequences each from the held-out test images and from "
        "the train images.",
        table,
        started,
        notes=f"Test sequences with touching repeats: {int(test[4].sum())} of {NUM_EVAL}. "
        "CER: edit distances summed over the sequences / summed true lengths. Final train "
        "loss: mean of the last 50 steps.",
    )
    plot_example(args.out, test, test_correct, models, names)
    plot_losses(args.out, losses, names)

    # A broken model (or loss) gets next to no string right, and without temporal context
    # touching repeats come out as one digit; in --quick mode there is only time to check
    # that the loss fell well below its starting value.
    curve = losses[0]
    if curve[-20:].mean() > 0.5 * curve[:10].mean():
        raise SystemExit(
            f"the CTC loss barely fell: {curve[:10].mean():.3f} -> {curve[-20:].mean():.3f}"
        )
    # Rows: context model greedy, beam; per-frame model greedy, beam.
    context, _, per_frame, _ = rows
    if not args.quick and context[2] < 0.5:
        raise SystemExit(f"test sequence accuracy {context[2]:.3f} < 0.5: training failed")
    if not args.quick and context[4] < per_frame[4] + 0.2:
        raise SystemExit(
            f"on touching repeats the context model ({context[4]:.3f}) is not clearly better "
            f"than the per-frame one ({per_frame[4]:.3f})"
        )
    # Beam search looks for the most probable string, which the best path only approximates.
    for greedy, beam in (rows[0:2], rows[2:4]):
        if not args.quick and beam[2] < greedy[2]:
            raise SystemExit(
                f"{greedy[0]}: beam search reads fewer test strings right ({beam[2]:.3f}) "
                f"than greedy decoding ({greedy[2]:.3f})"
            )


if __name__ == "__main__":
    main()
