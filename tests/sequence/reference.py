"""Float64 NumPy references of the sequence losses, from the papers' and torch's formulas.

Each returns the per-example (``reduction="none"``) values; see ``tests/_suite/numpy_reference.py``.
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import log_softmax


def ctc(logits, labels, logit_lengths=None, label_lengths=None, blank=0):
    """Graves et al. (2006), eq. 5-8: the alpha recursion over the extended label sequence,
    in float64 log space, one sequence at a time; returns -log p per sequence."""
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    batch, frames, _ = logits.shape
    logit_lengths = np.full(batch, frames) if logit_lengths is None else logit_lengths
    label_lengths = np.full(batch, labels.shape[1]) if label_lengths is None else label_lengths
    losses = np.empty(batch)
    for b in range(batch):
        log_probs = log_softmax(logits[b, : logit_lengths[b]])
        target = labels[b, : label_lengths[b]]
        extended = [blank]
        for label in target:
            extended += [int(label), blank]
        alpha = np.full(len(extended), -np.inf)
        if len(log_probs) == 0:
            losses[b] = 0.0 if len(target) == 0 else np.inf
            continue
        alpha[0] = log_probs[0, blank]
        if len(extended) > 1:
            alpha[1] = log_probs[0, extended[1]]
        for t in range(1, len(log_probs)):
            previous = alpha.copy()
            for s in range(len(extended)):
                terms = [previous[s]]
                if s >= 1:
                    terms.append(previous[s - 1])
                if s >= 2 and extended[s] != blank and extended[s] != extended[s - 2]:
                    terms.append(previous[s - 2])
                alpha[s] = np.logaddexp.reduce(terms) + log_probs[t, extended[s]]
        ends = alpha[-2:] if len(extended) > 1 else alpha[-1:]
        losses[b] = -np.logaddexp.reduce(ends)
    return losses


def ctc_greedy_decode(logits, logit_lengths=None, blank=0):
    """Best path: argmax per frame, consecutive repeats merged, blanks removed."""
    best = np.argmax(np.asarray(logits), axis=-1)
    frames = best.shape[1]
    logit_lengths = np.full(len(best), frames) if logit_lengths is None else logit_lengths
    decoded = []
    for row, length in zip(best, logit_lengths, strict=True):
        tokens, previous = [], None
        for token in row[:length]:
            if token != previous and token != blank:
                tokens.append(int(token))
            previous = token
        decoded.append(tokens)
    return decoded


def ctc_forward_probs(logits, labels, logit_lengths, label_lengths, blank=0):
    """Graves et al. (2006), eq. 5-7 kept per frame: ``(losses [B], blank [T, B, S+1],
    label [T, B, S])``, the log-alphas after each frame of the blank states (extended index
    2n) and the label states (2n + 1), in jaxloss's layout: frames past a sequence's length
    repeat its last alphas (the start before any frame: log 1 in blank state 0), states past
    its labels are -inf. Float64, one sequence and one frame at a time."""
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    batch, frames, _ = logits.shape
    max_labels = labels.shape[1]
    blanks = np.full((frames, batch, max_labels + 1), -np.inf)
    label_alphas = np.full((frames, batch, max_labels), -np.inf)
    losses = np.empty(batch)
    for b in range(batch):
        log_probs = log_softmax(logits[b, : logit_lengths[b]])
        extended = [blank]
        for label in labels[b, : label_lengths[b]]:
            extended += [int(label), blank]
        # With no frames: the empty prefix, probability 1.
        alpha = np.full(len(extended), -np.inf)
        alpha[0] = 0.0
        for t in range(len(log_probs)):
            if t == 0:  # eq. 6-7: start in the first blank or the first label
                alpha = np.full(len(extended), -np.inf)
                alpha[:2] = log_probs[0, extended[:2]]
            else:
                previous = alpha.copy()
                for s in range(len(extended)):
                    terms = [previous[s]]
                    if s >= 1:
                        terms.append(previous[s - 1])
                    if s >= 2 and extended[s] != blank and extended[s] != extended[s - 2]:
                        terms.append(previous[s - 2])
                    alpha[s] = np.logaddexp.reduce(terms) + log_probs[t, extended[s]]
            blanks[t, b, : len(extended) // 2 + 1] = alpha[0::2]
            label_alphas[t, b, : len(extended) // 2] = alpha[1::2]
        # Frames past the sequence's length repeat its last alphas.
        blanks[len(log_probs) :, b, : len(extended) // 2 + 1] = alpha[0::2]
        label_alphas[len(log_probs) :, b, : len(extended) // 2] = alpha[1::2]
        losses[b] = -np.logaddexp.reduce(alpha[-2:] if len(extended) > 1 else alpha[-1:])
    return losses, blanks, label_alphas
