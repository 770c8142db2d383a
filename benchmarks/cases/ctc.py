"""CTC against optax and torch, and CTC with its forward variables against optax, on the
inputs of ``bench_ctc.py``."""

from __future__ import annotations

import bench_ctc
import jax.numpy as jnp
import optax
from _harness import Case

import jaxloss

ORDER = 4


def cases(quick: bool, rng) -> list[Case]:
    shape = bench_ctc.QUICK_SHAPES[0] if quick else (16, 200, 64, 40)
    seed = int(rng.integers(1 << 31))
    return [case(shape, seed), forward_probs_case(shape, seed)]


def case(shape, seed: int) -> Case:
    """The CTC case at (B, T, K, S) = ``shape``; the sweeps over T and K reuse it."""
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


def forward_probs_case(shape, seed: int) -> Case:
    """The loss and its log-alphas, both differentiated: the summed losses plus the sum of
    the log-alphas of the states each sequence reaches within its labels (optax's last row
    of blank alphas folds in the label states; ours is folded the same way to compare)."""
    inputs = bench_ctc.make_inputs(shape, seed)
    logit_paddings, label_paddings = bench_ctc.paddings(inputs)
    max_labels = inputs["labels"].shape[1]
    label_lengths = jnp.asarray(inputs["label_lengths"])[None, :, None]
    blank_states = jnp.arange(max_labels + 1)[None, None, :] <= label_lengths
    label_states = jnp.arange(max_labels)[None, None, :] < label_lengths

    def objective(loss, blank_alphas, label_alphas, reachable):
        blank_alphas = jnp.where(blank_states & reachable(blank_alphas), blank_alphas, 0)
        label_alphas = jnp.where(label_states & reachable(label_alphas), label_alphas, 0)
        return loss.sum() + 1e-3 * (blank_alphas.sum() + label_alphas.sum())

    def ours(logits, labels, logit_lengths, label_lengths, *_):
        loss, blank_alphas, label_alphas = jaxloss.ctc_with_forward_probs(
            logits, labels, logit_lengths=logit_lengths, label_lengths=label_lengths
        )
        last = jnp.logaddexp(blank_alphas[-1, :, 1:], label_alphas[-1])
        blank_alphas = blank_alphas.at[-1, :, 1:].set(last)
        return objective(loss, blank_alphas, label_alphas, jnp.isfinite)

    def theirs(logits, labels, _, __, logit_paddings, label_paddings):
        outputs = optax.ctc_loss_with_forward_probs(logits, logit_paddings, labels, label_paddings)
        return objective(*outputs, lambda alpha: alpha > -1e4)

    arrays = [inputs[k] for k in ("logits", "labels", "logit_lengths", "label_lengths")]
    return Case(
        "ctc",
        "ctc_with_forward_probs (loss and log-alphas), (B, T, K, S) = " + str(tuple(shape)),
        [*arrays, logit_paddings, label_paddings],
        (0,),
        {"jaxloss": ours, "optax": theirs},
    )
