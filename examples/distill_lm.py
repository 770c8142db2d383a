"""Distilling a word-level language model into a smaller one with ``jaxloss.linear_distill``.

What it shows: knowledge distillation trains a small student to match a bigger teacher's
next-word distribution over the whole vocabulary, not only the one observed word. Written
plainly, both heads' logits are ``[tokens, vocab]`` matrices, the largest arrays of the step;
``jaxloss.linear_distill(student_hidden, student_weight, teacher_hidden, teacher_weight,
beta=..., chunk_size=...)`` computes the divergence between the two heads block by block
and holds neither. The script trains a teacher with ``jaxloss.linear_cross_entropy``, then
the same student (same initial parameters, same batches, same number of steps) four ways:
(a) on the observed words only (``linear_cross_entropy``, the baseline); (b) on the
teacher's distribution with the forward KL(teacher ‖ student) (``beta=0``); (c) with the
reverse KL(student ‖ teacher) (``beta=1``); (d) with the generalized Jensen–Shannon
divergence of GKD (``beta=0.5``). The distilled students use the divergence alone, at
temperature 1, with no hard-label term: each row then shows what that divergence teaches by
itself, and only the baseline ever sees the observed words. The teacher's hidden states and
head go in under ``jax.lax.stop_gradient``. It reports each model's validation perplexity
(on the observed words), its forward KL from the teacher and how often its most probable
word is the teacher's, a validation curve per student, and the XLA temporary memory of the
compiled ``value_and_grad`` (with respect to the student's hidden states and head) of
``linear_distill`` and of the materialized ``jaxloss.generalized_jsd(h_s @ W_s.T,
stop_gradient(h_t @ W_t.T))``, at the training shape and at a realistic shape (8,192
tokens, 512-dimensional hidden states for both models, 32k and 128k vocabularies) that is
compiled but never run.

Data: the word corpus of ``large_vocab_lm.py`` (``_corpus.py``): tokens of the Python
standard library's top-level modules, a 16,384-word vocabulary, every tenth file held out
for validation; nothing is downloaded.

Models: fixed-window language models (Bengio et al. 2003) over the previous four tokens.
Teacher: 64-dimensional embeddings, an MLP 256 → 512 → 256, head ``[16384, 256]``. Student:
32-dimensional embeddings, an MLP 128 → 128 → 64, head ``[16384, 64]``.

Run it from the repository root::

    .venv/bin/python examples/distill_lm.py            # full run, about 3 minutes on 2 cores
    .venv/bin/python examples/distill_lm.py --quick    # a short run, for CI
"""

from __future__ import annotations

import functools
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
    parameter_count,
    sample_windows,
    validation_loss,
)

import jaxloss

TEACHER = (64, [512, 256])  # (embedding width, MLP widths); the last width is the hidden size
STUDENT = (32, [128, 64])
BATCH = 256  # N, tokens per step
CHUNK_SIZE = 128  # the block size of linear_cross_entropy and linear_distill
TEMPERATURE = 1.0
LEARNING_RATE = 2e-3
EVAL_TOKENS = 4096  # validation windows scored along the way, for the curves
# The realistic shape, compiled only: (N tokens, student D, teacher D, V).
BIG_SHAPES = ((8192, 512, 512, 32768), (8192, 512, 512, 131072))
DIVERGENCES = {  # name: beta of linear_distill
    "forward KL": 0.0,
    "reverse KL": 1.0,
    "JSD": 0.5,
}
LABELS = {
    "hard labels": "hard labels: linear_cross_entropy",
    "forward KL": "forward KL(teacher ‖ student), beta=0",
    "reverse KL": "reverse KL(student ‖ teacher), beta=1",
    "JSD": "generalized JSD, beta=0.5",
}

Params = dict


def hard_label_loss(
    params: Params, contexts: jax.Array, labels: jax.Array, teacher: Params
) -> jax.Array:
    """The cross-entropy on the observed words (the teacher is not used)."""
    h = hidden_states(params, contexts)
    return jaxloss.linear_cross_entropy(h, params["head"], labels, chunk_size=CHUNK_SIZE)


def distill_loss(beta: float):
    """``(params, contexts, labels, teacher) -> loss``: the divergence from the teacher."""

    def loss_fn(
        params: Params, contexts: jax.Array, labels: jax.Array, teacher: Params
    ) -> jax.Array:
        teacher = jax.lax.stop_gradient(teacher)
        return jaxloss.linear_distill(
            hidden_states(params, contexts),
            params["head"],
            hidden_states(teacher, contexts),
            teacher["head"],
            beta=beta,
            temperature=TEMPERATURE,
            chunk_size=CHUNK_SIZE,
        )

    return loss_fn


@jax.jit
def _agreement_sums(
    models: dict[str, Params], teacher: Params, contexts: jax.Array, labels: jax.Array
) -> dict[str, jax.Array]:
    """Per model, the summed forward KL from the teacher, agreements of its argmax with the
    teacher's and right guesses of the observed word, on one batch.

    The logits of a 1,024-token batch are materialized here: this is evaluation, no gradient.
    The teacher's are computed once for every model.
    """
    teacher_logits = hidden_states(teacher, contexts) @ teacher["head"].T
    teacher_guess = jnp.argmax(teacher_logits, axis=-1)
    sums = {}
    for name, params in models.items():
        logits = hidden_states(params, contexts) @ params["head"].T
        kl = jaxloss.generalized_jsd(logits, teacher_logits, beta=0.0, reduction="sum")
        guess = jnp.argmax(logits, axis=-1)
        counts = jnp.stack([jnp.sum(guess == teacher_guess), jnp.sum(guess == labels)])
        sums[name] = jnp.concatenate([kl[None], counts.astype(kl.dtype)])
    return sums


def agreement(
    models: dict[str, Params], teacher: Params, contexts: np.ndarray, labels: np.ndarray
) -> dict[str, tuple[float, float, float]]:
    """Per model: the mean forward KL(teacher ‖ model) in nats per token, the fraction of
    tokens whose most probable word is the teacher's, and the fraction where it is the
    observed word."""
    batches = [
        _agreement_sums(models, teacher, contexts[i : i + 1024], labels[i : i + 1024])
        for i in range(0, len(labels), 1024)
    ]
    return {
        name: tuple(
            float(x) for x in sum(np.asarray(b[name], np.float64) for b in batches) / len(labels)
        )
        for name in models
    }


def materialized_distill(s_h, s_w, t_h, t_w, beta: float) -> jax.Array:
    """The textbook divergence: both heads' ``[N, V]`` logits, then ``generalized_jsd``."""
    teacher_logits = jax.lax.stop_gradient(t_h @ t_w.T)
    return jaxloss.generalized_jsd(s_h @ s_w.T, teacher_logits, beta=beta, temperature=TEMPERATURE)


def chunked_distill(s_h, s_w, t_h, t_w, beta: float) -> jax.Array:
    """The same divergence with ``linear_distill``, the teacher under ``stop_gradient``."""
    t_h, t_w = jax.lax.stop_gradient((t_h, t_w))
    return jaxloss.linear_distill(
        s_h, s_w, t_h, t_w, beta=beta, temperature=TEMPERATURE, chunk_size=CHUNK_SIZE
    )


def distill_memory(form, beta: float, shape: tuple[int, int, int, int]) -> int:
    """Temporary bytes of ``form``'s compiled ``value_and_grad`` with respect to the
    student's hidden states and head, at ``(N, student D, teacher D, V)``."""
    n, d_s, d_t, v = shape
    args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((n, d_s), (v, d_s), (n, d_t), (v, d_t))]
    return temp_memory(functools.partial(form, beta=beta), args, argnums=(0, 1))


def main() -> None:
    """Trains the teacher and the four students and writes the tables and the figure."""
    args = parse_args(__doc__)
    started = time.perf_counter()
    teacher_steps = 60 if args.quick else 500
    student_steps = 30 if args.quick else 300
    eval_every = 10 if args.quick else 25
    n_val = 4096 if args.quick else 16384

    train_ids, val_ids, _, _ = load_corpus()
    rng = np.random.default_rng(args.seed)
    batches, (val_contexts, val_labels) = sample_windows(
        rng, train_ids, val_ids, teacher_steps + student_steps, BATCH, n_val
    )
    teacher_batches, student_batches = batches[:teacher_steps], batches[teacher_steps:]
    curve_contexts, curve_labels = val_contexts[:EVAL_TOKENS], val_labels[:EVAL_TOKENS]
    key_teacher, key_student = jax.random.split(jax.random.key(args.seed))
    optimizer = optax.adam(LEARNING_RATE)

    def curve_recorder(curve: list[tuple[int, float]], every: int):
        def on_step(step: int, params: Params) -> None:
            if step % every == 0:
                loss = validation_loss(params, curve_contexts, curve_labels, CHUNK_SIZE)
                curve.append((step, float(np.exp(loss))))

        return on_step

    teacher_curve: list[tuple[int, float]] = []
    clock = time.perf_counter()
    teacher, teacher_losses = fit(
        hard_label_loss,
        init_lm(key_teacher, *TEACHER),
        [(*batch, None) for batch in teacher_batches],
        optimizer,
        teacher_steps,
        desc="teacher",
        on_step=curve_recorder(teacher_curve, teacher_steps // 10),
    )
    seconds = {"teacher": time.perf_counter() - clock}

    student0 = init_lm(key_student, *STUDENT)
    losses = {"hard labels": hard_label_loss}
    losses |= {name: distill_loss(beta) for name, beta in DIVERGENCES.items()}
    students, final_losses, curves = {}, {}, {}
    for name, loss_fn in losses.items():
        curves[name] = []
        clock = time.perf_counter()
        students[name], train_losses = fit(
            loss_fn,
            student0,
            [(*batch, teacher) for batch in student_batches],
            optimizer,
            student_steps,
            desc=name,
            on_step=curve_recorder(curves[name], eval_every),
        )
        seconds[name] = time.perf_counter() - clock
        final_losses[name] = float(np.mean(train_losses[-20:]))

    rows = []
    models = {"teacher": teacher} | students
    scores = agreement(models, teacher, val_contexts, val_labels)
    for name, params in models.items():
        val = validation_loss(params, val_contexts, val_labels, CHUNK_SIZE)
        kl, same, right = scores[name]
        if name == "teacher":
            model = f"teacher (D={TEACHER[1][-1]}), {teacher_steps} steps"
            trained_with = "hard labels: linear_cross_entropy"
            train_loss = float(np.mean(teacher_losses[-20:]))
        else:
            model = f"student (D={STUDENT[1][-1]}), {student_steps} steps"
            trained_with, train_loss = LABELS[name], final_losses[name]
        rows.append(
            [
                model,
                trained_with,
                f"{parameter_count(params):,}",
                train_loss,
                val,
                float(np.exp(val)),
                kl,
                f"{same:.1%}",
                f"{right:.1%}",
                f"{seconds[name]:.0f}",
            ]
        )
    headers = [
        "model",
        "trained with",
        "parameters",
        "final train loss",
        "val loss",
        "val perplexity",
        "val KL(teacher ‖ model)",
        "argmax = teacher's",
        "argmax = observed word",
        "train s",
    ]
    results = markdown_table(headers, rows)

    n_train = (BATCH, STUDENT[1][-1], TEACHER[1][-1], VOCAB)
    shapes = (n_train, *BIG_SHAPES)
    shape_names = [f"N={n}, Ds={d_s}, Dt={d_t}, V={v}" for n, d_s, d_t, v in shapes]
    forms = {"materialized": materialized_distill, "linear_distill": chunked_distill}
    memory = {
        (name, form_name): [distill_memory(form, beta, s) for s in shapes]
        for name, beta in DIVERGENCES.items()
        for form_name, form in forms.items()
    }
    memory_rows = []
    for (name, form_name), n_bytes in memory.items():
        beta = DIVERGENCES[name]
        call = (
            f"generalized_jsd(h_s @ W_s.T, h_t @ W_t.T, beta={beta:g})"
            if form_name == "materialized"
            else f"linear_distill(beta={beta:g}, chunk_size={CHUNK_SIZE})"
        )
        memory_rows.append([name, call] + [mebibytes(b) for b in n_bytes])
    memory_headers = ["divergence", "loss"] + [
        f"temp memory {s}" + (" (trained)" if i == 0 else "") for i, s in enumerate(shape_names)
    ]
    memory_table = markdown_table(memory_headers, memory_rows)
    ratios = ", ".join(
        f"{m / c:,.0f}x at {s}"
        for m, c, s in zip(
            memory[("JSD", "materialized")],
            memory[("JSD", "linear_distill")],
            shape_names,
            strict=True,
        )
    )
    notes = (
        f"Teacher: {teacher_steps} Adam steps of {BATCH} tokens. Students: {student_steps} "
        f"Adam steps each from the same initial parameters on the same batches (not the "
        f"teacher's); the distilled ones minimize the divergence alone (temperature "
        f"{TEMPERATURE:g}, no hard-label term). Final train loss: mean of the last 20 steps, "
        f"each row in its own objective (cross-entropy or divergence, nats per token). "
        f"Validation: {n_val:,} held-out windows; perplexity on the observed words; argmax: "
        f"the model's most probable next word. Train s: seconds on this machine, validation "
        f"curve included.\n"
        f"Temporary memory of the compiled value_and_grad (float32, with respect to the "
        f"student's hidden states and head) saved by linear_distill for the JSD: {ratios}. "
        f"The larger shapes are compiled, never run."
    )
    report(
        args.out,
        "distill_lm",
        "Distilling a word-level LM on the Python standard library into a smaller one",
        results + "\n\n" + memory_table,
        started,
        notes,
    )

    fig, (ax_curve, ax_mem) = plt.subplots(1, 2, figsize=(14, 4.8))
    steps, ppl = zip(*teacher_curve, strict=True)
    ax_curve.axhline(
        ppl[-1], color="k", ls=":", lw=1, label=f"teacher after {steps[-1]} steps ({ppl[-1]:.0f})"
    )
    for name, curve in curves.items():
        steps, ppl = zip(*curve, strict=True)
        ax_curve.plot(steps, ppl, marker=".", label=LABELS[name])
    ax_curve.set_yscale("log")
    # The first points are in the thousands; the limits keep the last ones apart.
    final = max(curve[-1][1] for curve in curves.values())
    ax_curve.set_ylim(0.9 * teacher_curve[-1][1], 4 * final)
    ax_curve.set(
        xlabel="student step",
        ylabel=f"validation perplexity ({EVAL_TOKENS:,} windows, log scale)",
        title="Students: validation perplexity on the observed words",
    )
    ax_curve.legend()
    memory_bars(
        ax_mem,
        {
            f"{form_name}, beta=0.5": memory[("JSD", form_name)]
            for form_name in ("materialized", "linear_distill")
        },
        shape_names,
    )
    fig.tight_layout()
    save_figure(fig, args.out, "distill_lm")


if __name__ == "__main__":
    main()
