"""A word-level language model with a 16k vocabulary, trained with ``jaxloss.linear_cross_entropy``.

What it shows: the output layer of a language model scores every hidden state against every
word of the vocabulary, so the logits are a ``[tokens, vocab]`` matrix; at realistic sizes it
and its gradient are the largest arrays of the whole training step (a spam filter over a
word vocabulary, a keyboard's next-word suggestion and an LLM all end in this layer).
``jaxloss.linear_cross_entropy(hidden, weight, labels, chunk_size=...)`` computes the same
cross-entropy block by block and never holds those logits. The script trains the same model
twice, from the same initial parameters on the same batches: once the naive way
(``logits = hidden @ weight.T`` then ``jaxloss.cross_entropy``) and once with the chunked
loss. It prints the largest difference between the two training-loss curves (they differ
only in the order of float32 sums) and the validation loss and perplexity of both, and it
asks XLA how much temporary memory the compiled ``value_and_grad`` of each loss needs, at
the training shape and at a larger, realistic shape (8,192 tokens, 512-dimensional hidden
states, 32k and 128k vocabularies), which is compiled but never run.

Data: word-level tokens of the Python standard library's own source code (the top-level
``*.py`` files under ``sysconfig.get_paths()["stdlib"]``, sorted by name; nothing is
downloaded). A token is an identifier, a number or one punctuation character; the 16,383
most frequent tokens of the training files plus ``<unk>`` form the vocabulary. Every tenth
file is held out for validation. The corpus is fixed for a given Python version (the
standard library differs slightly between versions).

Model: a fixed-window neural language model (Bengio et al. 2003): the embeddings of the
previous four tokens, concatenated, go through an MLP to a 128-dimensional hidden state
``h``; the vocabulary projection ``W`` is ``[16384, 128]``.

Run it from the repository root::

    .venv/bin/python examples/large_vocab_lm.py            # 400 steps per loss, a few minutes
    .venv/bin/python examples/large_vocab_lm.py --quick    # 30 steps per loss
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from _common import (
    fit,
    markdown_table,
    mebibytes,
    memory_bars,
    parse_args,
    report,
    save_figure,
    temp_memory,
)
from _corpus import (
    VOCAB,
    hidden_states,
    init_lm,
    load_corpus,
    sample_windows,
    validation_loss,
)

import jaxloss

EMBED = 64
HIDDEN = 128  # D, the width of h and of the rows of W
BATCH = 256  # N, tokens per step
CHUNK_SIZE = 256
LEARNING_RATE = 2e-3
# The realistic shapes, compiled only: (N tokens, D, V).
BIG_SHAPES = ((8192, 512, 32768), (8192, 512, 131072))
# The two curves differ only by float32 rounding (about 1e-6 on CPU); 1e-3 leaves room for
# backends with coarser float32 matmuls (TF32 on GPUs), while a real error, such as one lost
# block of 256 of the 16,384 words, would move the loss by about 1e-2.
TOLERANCE = 1e-3
LABELS = {
    "naive": "naive: h @ W.T, cross_entropy",
    "chunked": f"linear_cross_entropy, chunk_size={CHUNK_SIZE}",
}

Params = dict


def naive_head(h: jax.Array, weight: jax.Array, labels: jax.Array) -> jax.Array:
    """The textbook head: the ``[N, V]`` logits, then the cross-entropy."""
    return jaxloss.cross_entropy(h @ weight.T, labels)


def chunked_head(h: jax.Array, weight: jax.Array, labels: jax.Array) -> jax.Array:
    """The same cross-entropy, ``CHUNK_SIZE`` vocabulary entries at a time."""
    return jaxloss.linear_cross_entropy(h, weight, labels, chunk_size=CHUNK_SIZE)


def lm_loss(head):
    """``(params, contexts, labels) -> loss`` of the model with the loss head ``head``."""

    def loss_fn(params: Params, contexts: jax.Array, labels: jax.Array) -> jax.Array:
        return head(hidden_states(params, contexts), params["head"], labels)

    return loss_fn


def head_memory(head, shape: tuple[int, int, int]) -> int:
    """XLA's temporary buffer bytes for the compiled ``value_and_grad`` of a loss head."""
    n, d, v = shape
    args = (
        jax.ShapeDtypeStruct((n, d), jnp.float32),
        jax.ShapeDtypeStruct((v, d), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    return temp_memory(head, args, argnums=(0, 1))


def head_milliseconds(head, params: Params, contexts: np.ndarray, labels: np.ndarray) -> float:
    """Median wall time of the head's jitted ``value_and_grad`` on one training batch."""
    h = hidden_states(params, jnp.asarray(contexts))
    step = jax.jit(jax.value_and_grad(head, argnums=(0, 1)))
    jax.block_until_ready(step(h, params["head"], labels))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        jax.block_until_ready(step(h, params["head"], labels))
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    """Trains the model with both loss heads and writes the table and the figure."""
    args = parse_args(__doc__)
    started = time.perf_counter()
    steps = 30 if args.quick else 400
    n_val = 4096 if args.quick else 32768

    train_ids, val_ids, _, _ = load_corpus()
    rng = np.random.default_rng(args.seed)
    batches, (val_contexts, val_labels) = sample_windows(
        rng, train_ids, val_ids, steps, BATCH, n_val
    )

    params0 = init_lm(jax.random.key(args.seed), EMBED, [256, HIDDEN])
    optimizer = optax.adam(LEARNING_RATE)
    heads = {"naive": naive_head, "chunked": chunked_head}
    trained, curves = {}, {}
    for name, head in heads.items():
        trained[name], curves[name] = fit(
            lm_loss(head), params0, batches, optimizer, steps, desc=f"{name} head"
        )
    difference = np.abs(curves["naive"] - curves["chunked"])
    max_difference = float(difference.max())
    # In units of the float32 spacing at the loss value: rounding-level differences are a few.
    ulps = difference / np.spacing(curves["naive"].astype(np.float32))

    training_shape = (BATCH, HIDDEN, VOCAB)
    shapes = (training_shape, *BIG_SHAPES)
    memory = {name: [head_memory(head, s) for s in shapes] for name, head in heads.items()}
    rows = []
    for name, head in heads.items():
        val = validation_loss(trained[name], val_contexts, val_labels, CHUNK_SIZE)
        ms = head_milliseconds(head, trained[name], *batches[0])
        rows.append(
            [LABELS[name], curves[name][-1], val, float(np.exp(val)), f"{ms:.0f}"]
            + [mebibytes(b) for b in memory[name]]
        )
    shape_names = [f"N={n}, D={d}, V={v}" for n, d, v in shapes]
    headers = ["loss head", "final train loss", "val loss", "val perplexity", "head ms/step"]
    headers += [
        f"temp memory {s}" + (" (trained)" if i == 0 else "") for i, s in enumerate(shape_names)
    ]
    table = markdown_table(headers, rows)
    ratios = ", ".join(
        f"{n / c:,.0f}x at {s}"
        for n, c, s in zip(memory["naive"], memory["chunked"], shape_names, strict=True)
    )
    notes = (
        f"Both trained {steps} Adam steps of {BATCH} tokens from the same initial parameters "
        f"on the same batches. Largest |naive − chunked| training loss over the steps: "
        f"{max_difference:.2e}, {ulps.max():.0f} float32 spacings of the loss "
        f"(tolerance {TOLERANCE:g}).\n"
        f"Temporary memory of the compiled value_and_grad (float32) saved by chunking: "
        f"{ratios}. The larger shapes are compiled, never run. 'head ms/step' is the median "
        f"of 5 runs of the loss head's value_and_grad at the training shape on this machine."
    )
    report(
        args.out,
        "large_vocab_lm",
        "Word-level LM on the Python standard library: naive vs chunked cross-entropy head",
        table,
        started,
        notes,
    )

    fig, (ax_loss, ax_diff, ax_mem) = plt.subplots(1, 3, figsize=(16, 4.5))
    step_axis = np.arange(1, steps + 1)
    ax_loss.plot(step_axis, curves["naive"], lw=3, alpha=0.5, label=LABELS["naive"])
    ax_loss.plot(step_axis, curves["chunked"], "k--", lw=1, label=LABELS["chunked"])
    ax_loss.set(xlabel="step", ylabel="training loss (nats/token)", title="Training loss")
    ax_loss.legend()
    ax_diff.plot(step_axis, ulps, ".", ms=3)
    ax_diff.set(
        xlabel="step",
        ylabel="|naive − chunked|, in float32 spacings of the loss",
        title=f"Difference of the two curves (max {max_difference:.1e}, tolerance {TOLERANCE:g})",
    )
    memory_bars(ax_mem, {LABELS[name]: memory[name] for name in heads}, shape_names)
    fig.tight_layout()
    save_figure(fig, args.out, "large_vocab_lm")

    if max_difference > TOLERANCE:
        raise SystemExit(
            f"the two loss curves differ by {max_difference:.2e} > {TOLERANCE:g} at some step"
        )


if __name__ == "__main__":
    main()
