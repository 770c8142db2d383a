"""Float64 NumPy references of the sequence losses, from the papers' and torch's formulas.

Each returns the per-example (``reduction="none"``) values; see ``tests/_suite/numpy_reference.py``.
"""

from __future__ import annotations

import itertools

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


def _rnnt_lattices(logits, labels, logit_lengths, label_lengths, blank, fused_log_softmax):
    """Per sequence: its index, the log-probabilities of its lattice ``[T_b, U_b + 1, V]``
    (float64), its labels ``[U_b]`` and the blank id (negative: from the end)."""
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    batch, frames, positions, classes = logits.shape
    logit_lengths = np.full(batch, frames) if logit_lengths is None else logit_lengths
    label_lengths = np.full(batch, positions - 1) if label_lengths is None else label_lengths
    blank = blank % classes
    for b in range(batch):
        frames_b, labels_b = int(logit_lengths[b]), int(label_lengths[b])
        if frames_b < 1:
            raise ValueError("RNN-T needs at least one frame: the final blank is emitted in one.")
        lattice = logits[b, :frames_b, : labels_b + 1]
        log_probs = log_softmax(lattice) if fused_log_softmax else lattice
        yield b, log_probs, labels[b, :labels_b].astype(np.int64), blank


def _rnnt_alpha_beta(log_probs, target, blank):
    """Graves (2012), section 2.4 (forward-backward) in log space: ``alpha [T, U+1]``,
    ``beta [T+1, U+1]`` (row T: after the final blank, log 1 at U and log 0 elsewhere),
    the log-probabilities of blank ``[T, U+1]`` and of the next label ``[T, U]``, log p(y|x)."""
    frames, positions, _ = log_probs.shape
    num_labels = positions - 1
    emit_blank = log_probs[:, :, blank]  # [T, U+1]
    emit_label = log_probs[:, np.arange(num_labels), target]  # [T, U]: y_{u+1} from (t, u)
    alpha = np.full((frames, positions), -np.inf)
    for t in range(frames):
        for u in range(positions):
            if t == 0 and u == 0:
                alpha[t, u] = 0.0
                continue
            terms = []
            if t > 0:
                terms.append(alpha[t - 1, u] + emit_blank[t - 1, u])
            if u > 0:
                terms.append(alpha[t, u - 1] + emit_label[t, u - 1])
            alpha[t, u] = np.logaddexp.reduce(terms)
    beta = np.full((frames + 1, positions), -np.inf)
    beta[frames, num_labels] = 0.0
    for t in reversed(range(frames)):
        for u in reversed(range(positions)):
            terms = [beta[t + 1, u] + emit_blank[t, u]]
            if u < num_labels:
                terms.append(beta[t, u + 1] + emit_label[t, u])
            beta[t, u] = np.logaddexp.reduce(terms)
    return alpha, beta, emit_blank, emit_label, beta[0, 0]


def rnnt(
    logits,
    labels,
    logit_lengths=None,
    label_lengths=None,
    blank=0,
    fused_log_softmax=True,
):
    """Graves (2012), "Sequence Transduction with Recurrent Neural Networks", section 2.4
    (arXiv:1211.3711): -log p(y|x) per sequence by the forward recursion
    alpha(t, u) = logaddexp(alpha(t-1, u) + lp(t-1, u, blank), alpha(t, u-1) + lp(t, u-1, y_u)),
    -log p = -(alpha(T-1, U) + lp(T-1, U, blank)); lp = log_softmax(logits) over the classes
    when ``fused_log_softmax``, else the logits as given. Float64, one sequence at a time;
    logits ``[B, T, U+1, V]``, returns ``[B]``."""
    options = (logit_lengths, label_lengths, blank, fused_log_softmax)
    losses = np.empty(np.shape(logits)[0])
    for b, log_probs, target, blank_id in _rnnt_lattices(logits, labels, *options):
        alpha, _, emit_blank, _, _ = _rnnt_alpha_beta(log_probs, target, blank_id)
        losses[b] = -(alpha[-1, -1] + emit_blank[-1, -1])
    return losses


def rnnt_grad(
    logits,
    labels,
    logit_lengths=None,
    label_lengths=None,
    blank=0,
    fused_log_softmax=True,
    clamp=-1.0,
):
    """Graves (2012), section 2.5 (training): the gradient of each sequence's -log p with
    respect to its logits ``[B, T, U+1, V]``, in closed form from alpha and beta (0 outside
    each lattice).

    With respect to lp(t, u, k): minus the posterior of the transition that emits k at
    (t, u) (blank to (t+1, u), or y_{u+1} to (t, u+1)). Through the log-softmax: plus the
    occupancy of (t, u), exp(alpha + beta - log p), times softmax(logits)(t, u). With
    ``clamp > 0`` every element is clipped to [-clamp, clamp]."""
    options = (logit_lengths, label_lengths, blank, fused_log_softmax)
    grads = np.zeros(np.shape(logits), np.float64)
    for b, log_probs, target, blank_id in _rnnt_lattices(logits, labels, *options):
        alpha, beta, emit_blank, emit_label, log_p = _rnnt_alpha_beta(log_probs, target, blank_id)
        frames, positions, _ = log_probs.shape
        grad = np.zeros(log_probs.shape)
        grad[:, :, blank_id] -= np.exp(alpha + emit_blank + beta[1:] - log_p)
        t, u = np.meshgrid(np.arange(frames), np.arange(positions - 1), indexing="ij")
        label_posterior = np.exp(alpha[:, :-1] + emit_label + beta[:-1, 1:] - log_p)
        np.add.at(grad, (t, u, np.broadcast_to(target, t.shape)), -label_posterior)
        if fused_log_softmax:
            occupancy = np.exp(alpha + beta[:-1] - log_p)
            grad += occupancy[..., None] * np.exp(log_probs)
        grads[b, :frames, :positions] = grad
    return np.clip(grads, -clamp, clamp) if clamp > 0 else grads


def rnnt_brute_force(
    logits,
    labels,
    logit_lengths=None,
    label_lengths=None,
    blank=0,
    fused_log_softmax=True,
):
    """-log p(y|x) per sequence as the logsumexp over every alignment: each interleaving of
    the T-1 blanks that advance a frame and the U labels, then the final blank at
    (T-1, U). C(T-1+U, U) paths a sequence: tiny lattices only."""
    options = (logit_lengths, label_lengths, blank, fused_log_softmax)
    losses = np.empty(np.shape(logits)[0])
    for b, log_probs, target, blank_id in _rnnt_lattices(logits, labels, *options):
        frames, positions, _ = log_probs.shape
        steps = frames - 1 + positions - 1
        paths = []
        for label_steps in itertools.combinations(range(steps), positions - 1):
            t = u = 0
            log_prob = 0.0
            for step in range(steps):
                if step in label_steps:
                    log_prob += log_probs[t, u, target[u]]
                    u += 1
                else:
                    log_prob += log_probs[t, u, blank_id]
                    t += 1
            paths.append(log_prob + log_probs[t, u, blank_id])
        losses[b] = -np.logaddexp.reduce(paths)
    return losses


def ctc_viterbi(log_probs, labels, logit_lengths, label_lengths, blank=0):
    """The CTC recursion of Graves et al. (2006), eq. 5-7, with max in place of the sum
    (Viterbi), in float64 over the extended sequence ``blank, y_1, blank, ..., y_L, blank``,
    then the path traced back. Ties as torchaudio's ``forced_align``: the first best of
    (stay, previous state, skip), and the last label before the last blank at the end.
    Returns ``(paths, scores)``: per sequence the class of each of its frames (None if it
    cannot be aligned) and the best summed log-probability (-inf then)."""
    log_probs = np.asarray(log_probs, np.float64)
    labels = np.asarray(labels)
    paths, scores = [], np.empty(len(log_probs))
    for b in range(len(log_probs)):
        frames = log_probs[b, : logit_lengths[b]]
        extended = [blank]
        for label in labels[b, : label_lengths[b]]:
            extended += [int(label), blank]
        size = len(extended)
        # delta[t][s]: best log-score of frames 0..t ending in state s; back[t][s]: the move.
        delta = np.full((len(frames), size), -np.inf)
        back = np.zeros((len(frames), size), int)
        for t in range(len(frames)):
            for s in range(size):
                if t == 0:
                    if s < 2:
                        delta[0, s] = frames[0, extended[s]]
                        back[0, s] = s
                    continue
                candidates = [delta[t - 1, s], -np.inf, -np.inf]
                if s >= 1:
                    candidates[1] = delta[t - 1, s - 1]
                if s >= 3 and extended[s] != blank and extended[s] != extended[s - 2]:
                    candidates[2] = delta[t - 1, s - 2]
                back[t, s] = int(np.argmax(candidates))
                delta[t, s] = candidates[back[t, s]] + frames[t, extended[s]]
        if len(frames) == 0:
            possible = size == 1
            paths.append([] if possible else None)
            scores[b] = 0.0 if possible else -np.inf
            continue
        ends = [size - 2, size - 1] if size > 1 else [0]
        state = ends[int(np.argmax(delta[-1, ends]))]
        scores[b] = delta[-1, state]
        if scores[b] == -np.inf:
            paths.append(None)
            continue
        path = []
        for t in range(len(frames) - 1, -1, -1):
            path.append(extended[state])
            state -= back[t, state]
        paths.append(path[::-1])
    return paths, scores
