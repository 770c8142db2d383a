"""CTC against optax and torch, on the inputs of ``bench_ctc.py``."""

from __future__ import annotations

import bench_ctc
import optax
from _harness import Case

import jaxloss

ORDER = 4


def cases(quick: bool, rng) -> list[Case]:
    shape = bench_ctc.QUICK_SHAPES[0] if quick else (16, 200, 64, 40)
    return [case(shape, int(rng.integers(1 << 31)))]


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
