"""Float64 NumPy references written from the papers' and torch's documented formulas.

Each returns the per-example (``reduction="none"``) values. They are deliberately naive —
direct transcriptions of the formulas, not of jaxloss's code — so a test that compares
against them can catch a wrong derivation, not just a wrong refactoring.
"""

from __future__ import annotations

import numpy as np


def _f64(*arrays):
    return [np.asarray(a, np.float64) for a in arrays]


def mse(predictions, targets):
    p, t = _f64(predictions, targets)
    return (p - t) ** 2


def mae(predictions, targets):
    p, t = _f64(predictions, targets)
    return np.abs(p - t)


def huber(predictions, targets, delta=1.0):
    p, t = _f64(predictions, targets)
    d = np.abs(p - t)
    return np.where(d < delta, 0.5 * d**2, delta * (d - 0.5 * delta))


def smooth_l1(predictions, targets, beta=1.0):
    p, t = _f64(predictions, targets)
    d = np.abs(p - t)
    if beta == 0:
        return d
    return np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta)


def log_cosh(predictions, targets):
    p, t = _f64(predictions, targets)
    return np.log(np.cosh(p - t))


def log_softmax(logits, axis=-1):
    x = np.asarray(logits, np.float64)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _pick(values, labels):
    return np.take_along_axis(values, np.asarray(labels)[..., None], axis=-1)[..., 0]


def cross_entropy(logits, labels):
    return -_pick(log_softmax(logits), labels)


def nll(log_probs, labels):
    return -_pick(np.asarray(log_probs, np.float64), labels)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def binary_cross_entropy(probs, targets):
    p, t = _f64(probs, targets)
    with np.errstate(divide="ignore"):
        return -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log(1 - p), -100))


def binary_cross_entropy_with_logits(logits, targets, pos_weight=1.0):
    x, t = _f64(logits, targets)
    # log σ(x) = -log(1 + e^{-x}), written with logaddexp for large |x|.
    log_sig, log_one_minus_sig = -np.logaddexp(0, -x), -np.logaddexp(0, x)
    return -(pos_weight * t * log_sig + (1 - t) * log_one_minus_sig)


def sigmoid_focal(logits, targets, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss, transcribed."""
    x, t = _f64(logits, targets)
    p = sigmoid(x)
    ce = binary_cross_entropy_with_logits(x, t)
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss


def softmax_focal(logits, labels, gamma=2.0, alpha=None):
    log_p = _pick(log_softmax(logits), labels)
    loss = -((1 - np.exp(log_p)) ** gamma) * log_p
    if alpha is not None:
        loss = np.asarray(alpha, np.float64)[np.asarray(labels)] * loss
    return loss


def kl_div(log_input, target, log_target=False):
    x, t = _f64(log_input, target)
    if log_target:
        return np.exp(t) * (t - x)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0.0) - t * x


def gaussian_kl(mean, log_var, axis=-1):
    mu, log_var = _f64(mean, log_var)
    var = np.exp(log_var)
    # KL(N(μ, σ²) ‖ N(0, 1)) per dimension = ½(σ² + μ² − 1 − log σ²).
    return 0.5 * np.sum(var + mu**2 - 1 - log_var, axis=axis)


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


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _softmax_with_target(logits, labels, target):
    """-log softmax at the label, with the label's logit replaced by ``target``."""
    logits = np.array(logits, np.float64)
    rows = np.arange(len(labels))
    logits[rows, labels] = target
    return -log_softmax(logits)[rows, labels]


def _cosines(embeddings, centers, labels):
    cos = _unit(embeddings) @ _unit(centers).T
    return cos, np.clip(cos[np.arange(len(labels)), labels], -1.0, 1.0)


def norm_softmax(embeddings, centers, labels, scale=16.0):
    cos, cos_y = _cosines(embeddings, centers, labels)
    return _softmax_with_target(scale * cos, labels, scale * cos_y)


def cosface(embeddings, centers, labels, scale=64.0, margin=0.35):
    cos, cos_y = _cosines(embeddings, centers, labels)
    return _softmax_with_target(scale * cos, labels, scale * (cos_y - margin))


def arcface(embeddings, centers, labels, scale=64.0, margin=0.5, easy_margin=False):
    """InsightFace's ArcFace: cos(θ + m), with cos θ - m sin m where θ + m > π."""
    cos, cos_y = _cosines(embeddings, centers, labels)
    theta = np.arccos(cos_y)
    with_margin = np.cos(theta + margin)
    if easy_margin:
        target = np.where(cos_y > 0, with_margin, cos_y)
    else:
        target = np.where(theta + margin <= np.pi, with_margin, cos_y - margin * np.sin(margin))
    return _softmax_with_target(scale * cos, labels, scale * target)


def combined_margin(embeddings, centers, labels, scale=64.0, m1=1.0, m2=0.5, m3=0.0):
    cos, cos_y = _cosines(embeddings, centers, labels)
    target = np.cos(m1 * np.arccos(cos_y) + m2) - m3
    return _softmax_with_target(scale * cos, labels, scale * target)


def sphereface(embeddings, centers, labels, margin=4, scale=None, lam=0.0):
    """A-Softmax (Liu et al. 2017, eq. 7): ψ(θ) = (-1)^k cos(mθ) - 2k on [kπ/m, (k+1)π/m]."""
    cos, cos_y = _cosines(embeddings, centers, labels)
    norms = np.linalg.norm(np.asarray(embeddings, np.float64), axis=-1)
    s = norms if scale is None else np.full(len(labels), scale, np.float64)
    theta = np.arccos(cos_y)
    k = np.minimum(np.floor(margin * theta / np.pi), margin - 1)
    psi = (-1.0) ** k * np.cos(margin * theta) - 2 * k
    target = s * (lam * cos_y + psi) / (1 + lam)
    return _softmax_with_target(s[:, None] * cos, labels, target)


def linear_cross_entropy(hidden, weight, labels, bias=None):
    logits = np.asarray(hidden, np.float64) @ np.asarray(weight, np.float64).T
    if bias is not None:
        logits = logits + np.asarray(bias, np.float64)
    return cross_entropy(logits, labels)


def weighted_lse_sum(x, w, b, a):
    """Σ_i a_i logsumexp_j(x_i · w_j + b_j) and its gradients in x, w, b (softmax rows) and a."""
    x, w, b, a = _f64(x, w, b, a)
    z = x @ w.T + b
    log_p = log_softmax(z)
    lse = z[:, 0] - log_p[:, 0]
    p = np.exp(log_p) * a[:, None]
    return (a * lse).sum(), p @ w, p.T @ x, p.sum(0), lse


def center_loss(features, labels, centers):
    diff = np.asarray(features, np.float64) - np.asarray(centers, np.float64)[labels]
    return 0.5 * np.sum(diff**2, axis=-1)


def center_update(centers, features, labels, alpha=0.5):
    """Wen et al. 2016, eq. 4: c_j -= α Σ_{y_i=j}(c_j - x_i) / (1 + n_j), class by class."""
    centers = np.array(centers, np.float64)
    features = np.asarray(features, np.float64)
    new = centers.copy()
    for j in range(len(centers)):
        members = features[np.asarray(labels) == j]
        new[j] -= alpha * np.sum(centers[j] - members, axis=0) / (1 + len(members))
    return new


# --- pairs, triplets and contrastive ---


def contrastive(x1, x2, similar, margin=1.0):
    """Hadsell, Chopra & LeCun 2006: ½d² for similar pairs, ½max(0, m - d)² for dissimilar."""
    x1, x2, s = _f64(x1, x2, similar)
    d = np.sqrt(np.sum((x1 - x2) ** 2, axis=-1))
    return s * 0.5 * d**2 + (1 - s) * 0.5 * np.maximum(0.0, margin - d) ** 2


def _torch_pairwise_distance(x, y, p, eps):
    """torch.pairwise_distance: the p-norm of x - y + eps, eps added to every coordinate."""
    diff = np.abs(x - y + eps)
    if p == np.inf:
        return np.max(diff, axis=-1)
    return np.sum(diff**p, axis=-1) ** (1.0 / p)


def triplet_margin(
    anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False, squared=False
):
    """torch.nn.functional.triplet_margin_loss, or FaceNet's squared-L2 form when squared=True."""
    a, pos, neg = _f64(anchor, positive, negative)
    if squared:
        d_pos = np.sum((a - pos) ** 2, axis=-1)
        d_neg = np.sum((a - neg) ** 2, axis=-1)
        if swap:
            d_neg = np.minimum(d_neg, np.sum((pos - neg) ** 2, axis=-1))
    else:
        d_pos = _torch_pairwise_distance(a, pos, p, eps)
        d_neg = _torch_pairwise_distance(a, neg, p, eps)
        if swap:
            d_neg = np.minimum(d_neg, _torch_pairwise_distance(pos, neg, p, eps))
    return np.maximum(d_pos - d_neg + margin, 0.0)


def ratio_loss(anchor, positive, negative):
    """Balntas et al. 2016 (PN-Net ratio loss): (e+/(e+ + e-))² + (1 - e-/(e+ + e-))²."""
    a, pos, neg = _f64(anchor, positive, negative)
    d_pos = np.sqrt(np.sum((a - pos) ** 2, axis=-1))
    d_neg = np.sqrt(np.sum((a - neg) ** 2, axis=-1))
    # e+/(e+ + e-) = 1/(1 + e^{d- - d+}), written with logaddexp so large distances don't overflow.
    pos_share = np.exp(-np.logaddexp(0.0, d_neg - d_pos))
    neg_share = np.exp(-np.logaddexp(0.0, d_pos - d_neg))
    return pos_share**2 + (1 - neg_share) ** 2


def margin_ranking(x1, x2, y, margin=0.0):
    """torch.nn.functional.margin_ranking_loss: max(0, -y(x1 - x2) + margin), elementwise."""
    x1, x2, y = _f64(x1, x2, y)
    return np.maximum(0.0, -y * (x1 - x2) + margin)


def cosine_embedding(x1, x2, y, margin=0.0):
    """torch.nn.functional.cosine_embedding_loss: 1 - cos for y = 1, max(0, cos - m) for y = -1."""
    x1, x2, y = _f64(x1, x2, y)
    eps = 1e-12
    cos = np.sum(x1 * x2, axis=-1) / np.sqrt(
        (np.sum(x1**2, axis=-1) + eps) * (np.sum(x2**2, axis=-1) + eps)
    )
    loss = np.zeros_like(cos)
    loss = np.where(y == 1, 1 - cos, loss)
    return np.where(y == -1, np.maximum(0.0, cos - margin), loss)


def nt_xent(z1, z2, temperature=0.1, where=None):
    """SimCLR's NT-Xent (Chen et al. 2020): per pair, the mean of its two anchors' losses."""
    z1, z2 = _f64(z1, z2)
    n_all = len(z1)
    keep = np.ones(n_all, bool) if where is None else np.asarray(where, bool)
    out = np.zeros(n_all)
    kept = np.flatnonzero(keep)
    n = len(kept)
    if n == 0:
        return out
    u = _unit(np.concatenate([z1[kept], z2[kept]]))
    sim = u @ u.T / temperature
    losses = np.empty(2 * n)
    for i in range(2 * n):
        j = i + n if i < n else i - n
        others = [sim[i, k] for k in range(2 * n) if k != i]
        losses[i] = -sim[i, j] + np.logaddexp.reduce(others)
    out[kept] = (losses[:n] + losses[n:]) / 2
    return out


def batch_triplet(embeddings, labels, margin=1.0, mining="all", squared=False, where=None):
    """Online triplet loss (scalar): all positive triplets, batch-hard (Hermans et al. 2017),
    or FaceNet semi-hard as in TF-Addons' triplet_semihard_loss."""
    e = np.asarray(embeddings, np.float64)
    labels = np.asarray(labels)
    b = len(e)
    keep = np.ones(b, bool) if where is None else np.asarray(where, bool)
    dist = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            sq = np.sum((e[i] - e[j]) ** 2)
            dist[i, j] = sq if squared else np.sqrt(sq)

    def positives(a):
        return [p for p in range(b) if p != a and keep[p] and labels[p] == labels[a]]

    def negatives(a):
        return [n for n in range(b) if keep[n] and labels[n] != labels[a]]

    anchors = [a for a in range(b) if keep[a]]
    if mining == "all":
        active = []
        for a in anchors:
            for p in positives(a):
                for n in negatives(a):
                    loss = dist[a, p] - dist[a, n] + margin
                    if loss > 0:
                        active.append(loss)
        return float(np.mean(active)) if active else 0.0
    if mining == "hard":
        losses = []
        for a in anchors:
            pos, neg = positives(a), negatives(a)
            if pos and neg:
                hardest_pos = max(dist[a, p] for p in pos)
                hardest_neg = min(dist[a, n] for n in neg)
                losses.append(max(hardest_pos - hardest_neg + margin, 0.0))
        return float(np.mean(losses)) if losses else 0.0
    if mining == "semihard":
        losses = []
        for a in anchors:
            neg = negatives(a)
            if not neg:
                continue
            for p in positives(a):
                farther = [dist[a, n] for n in neg if dist[a, n] > dist[a, p]]
                chosen = min(farther) if farther else max(dist[a, n] for n in neg)
                losses.append(max(dist[a, p] - chosen + margin, 0.0))
        return float(np.mean(losses)) if losses else 0.0
    raise ValueError(f"unknown mining {mining!r}")


def _overlap_inputs(probs, targets, include_background):
    """Per-pixel probabilities and one-hot targets ``[batch, pixels, classes]``."""
    p = np.asarray(probs, np.float64)
    num_classes = p.shape[-1]
    t = np.asarray(targets)
    if t.shape == p.shape[:-1]:  # integer labels; other ids leave the pixel out
        labels = t.reshape(p.shape[0], -1)
        p = p.reshape(p.shape[0], -1, num_classes).copy()
        onehot = np.zeros_like(p)
        for b, i in np.ndindex(labels.shape):
            if 0 <= labels[b, i] < num_classes:
                onehot[b, i, labels[b, i]] = 1.0
            else:
                p[b, i] = 0.0
        t = onehot
    else:
        p = p.reshape(p.shape[0], -1, num_classes)
        t = np.asarray(t, np.float64).reshape(p.shape)
    if not include_background:
        p, t = p[..., 1:], t[..., 1:]
    return p, t


def _ratio_or_one(numerator, denominator):
    return np.where(denominator == 0, 1.0, numerator / np.where(denominator == 0, 1, denominator))


def dice(
    probs,
    targets,
    smooth_nr=1e-5,
    smooth_dr=1e-5,
    squared=False,
    include_background=True,
):
    """Milletari et al. / MONAI: 1 − (2Σpt + s_nr) / (Σp + Σt + s_dr) per (sample, class)."""
    p, t = _overlap_inputs(probs, targets, include_background)
    power = 2 if squared else 1
    numerator = 2 * (p * t).sum(axis=1) + smooth_nr
    denominator = (p**power).sum(axis=1) + (t**power).sum(axis=1) + smooth_dr
    return 1 - _ratio_or_one(numerator, denominator)


def tversky(
    probs,
    targets,
    alpha=0.5,
    beta=0.5,
    gamma=1.0,
    smooth_nr=1e-5,
    smooth_dr=1e-5,
    include_background=True,
):
    """Salehi et al.; focal form (1 − TI)^γ of Abraham and Khan with their 1/γ as γ."""
    p, t = _overlap_inputs(probs, targets, include_background)
    tp, fp, fn = (p * t).sum(1), (p * (1 - t)).sum(1), ((1 - p) * t).sum(1)
    index = _ratio_or_one(tp + smooth_nr, tp + alpha * fp + beta * fn + smooth_dr)
    return np.maximum(1 - index, 0) ** gamma


def chamfer(
    x,
    y,
    x_lengths=None,
    y_lengths=None,
    squared=True,
    point_reduction="mean",
    single_directional=False,
):
    """PyTorch3D's chamfer_distance per cloud pair, by brute force over the valid points."""
    x, y = _f64(x, y)
    out = []
    for b in range(x.shape[0]):
        xb = x[b, : x.shape[1] if x_lengths is None else int(np.clip(x_lengths[b], 0, None))]
        yb = y[b, : y.shape[1] if y_lengths is None else int(np.clip(y_lengths[b], 0, None))]
        distances = ((xb[:, None] - yb[None]) ** 2).sum(-1)
        if not squared:
            distances = np.sqrt(distances)
        total = 0.0
        directions = [(distances, 1)] if single_directional else [(distances, 1), (distances, 0)]
        for matrix, axis in directions:
            counted = matrix.shape[1 - axis]
            if counted == 0 or matrix.shape[axis] == 0:
                continue  # an empty cloud, or no neighbour to be found: 0
            nearest = matrix.min(axis=axis)
            total += nearest.sum() if point_reduction == "sum" else nearest.mean()
        out.append(total)
    return np.array(out)


def gram_matrix(features):
    """Gatys et al.'s Gram matrix F Fᵀ, divided by the number of positions."""
    (f,) = _f64(features)
    f = f.reshape(f.shape[0], -1, f.shape[-1])
    return np.einsum("bpc,bpd->bcd", f, f) / f.shape[1]


def style_loss(features, targets, weights=None):
    """Σ_l w_l E_l, E_l = Σ(G − A)² / (4 C² P²) on unnormalized Gram matrices (Gatys)."""
    weights = [1.0] * len(features) if weights is None else weights
    total = 0.0
    for f, t, w in zip(features, targets, weights, strict=True):
        f, t = _f64(f, t)
        positions_f = np.prod(f.shape[1:-1])
        positions_t = np.prod(t.shape[1:-1])
        channels = f.shape[-1]
        g = gram_matrix(f) * positions_f  # unnormalized
        a = gram_matrix(t) * positions_t
        e = ((g / positions_f - a / positions_t) ** 2).sum(axis=(1, 2)) / (4 * channels**2)
        if positions_f == positions_t:  # Gatys' formula as printed
            e_printed = ((g - a) ** 2).sum(axis=(1, 2)) / (4 * channels**2 * positions_f**2)
            assert np.allclose(e, e_printed)
        total = total + w * e
    return total


def perceptual_loss(features, targets, weights=None):
    """Johnson et al.'s feature reconstruction loss ‖φ(ŷ) − φ(y)‖² / (C H W), summed over layers."""
    weights = [1.0] * len(features) if weights is None else weights
    total = 0.0
    for f, t, w in zip(features, targets, weights, strict=True):
        f, t = _f64(f, t)
        d = (f - t) ** 2
        total = total + w * d.reshape(f.shape[0], -1).mean(axis=1)
    return total


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def gan_discriminator(real_logits, fake_logits):
    """−log σ(D(x)) − log(1 − σ(D(G(z)))) (Goodfellow et al. 2014)."""
    real, fake = _f64(real_logits, fake_logits)
    return -_log_sigmoid(real) - _log_sigmoid(-fake)


def gan_generator(fake_logits, saturating=False):
    (fake,) = _f64(fake_logits)
    return _log_sigmoid(-fake) if saturating else -_log_sigmoid(fake)


def wasserstein_critic(real_scores, fake_scores):
    real, fake = _f64(real_scores, fake_scores)
    return fake - real


def wasserstein_generator(fake_scores):
    return -np.asarray(fake_scores, np.float64)


def hinge_discriminator(real_scores, fake_scores):
    real, fake = _f64(real_scores, fake_scores)
    return np.maximum(0, 1 - real) + np.maximum(0, 1 + fake)


def elbo_loss(reconstruction, mean, log_var, beta=1.0, free_bits=0.0, where=None):
    """r + β Σ_j KL_j; free bits: dimension j costs max(λ, batch-mean KL_j) (Kingma 2016)."""
    r, mu, lv = _f64(reconstruction, mean, log_var)
    kl = -0.5 * (1 + lv - mu**2 - np.exp(lv))
    if free_bits:
        keep = np.ones(len(r), bool) if where is None else np.asarray(where)
        batch_mean = kl[keep].mean(axis=0) if keep.any() else np.zeros(kl.shape[1])
        kl = np.where(batch_mean >= free_bits, kl, free_bits)
    return r + beta * kl.sum(axis=1)


def bradley_terry(chosen_rewards, rejected_rewards, margin=0.0):
    c, r = _f64(chosen_rewards, rejected_rewards)
    return -_log_sigmoid(c - r - margin)


def dpo(pc, pr, rc, rr, beta=0.1, label_smoothing=0.0, loss_type="sigmoid"):
    """TRL's DPOTrainer.dpo_loss for the sigmoid, hinge and ipo loss types."""
    pc, pr, rc, rr = _f64(pc, pr, rc, rr)
    logits = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        return -(1 - label_smoothing) * _log_sigmoid(beta * logits) - (
            label_smoothing * _log_sigmoid(-beta * logits)
        )
    if loss_type == "hinge":
        return np.maximum(0, 1 - beta * logits)
    return (logits - 1 / (2 * beta)) ** 2


def simpo(chosen_logps, rejected_logps, beta=2.0, gamma=0.5, label_smoothing=0.0):
    """TRL's CPOTrainer with loss_type="simpo": logits = Δ − γ/β, then the sigmoid loss."""
    c, r = _f64(chosen_logps, rejected_logps)
    logits = (c - r) - gamma / beta
    return -(1 - label_smoothing) * _log_sigmoid(beta * logits) - label_smoothing * _log_sigmoid(
        -beta * logits
    )


def orpo(chosen_logps, rejected_logps, beta=0.1):
    """TRL's ORPOTrainer: −chosen + β·(−log σ(log odds_c − log odds_r)), per pair."""
    c, r = _f64(chosen_logps, rejected_logps)
    log_odds = (c - r) - (np.log1p(-np.exp(c)) - np.log1p(-np.exp(r)))
    return -c - beta * _log_sigmoid(log_odds)


def kto(
    policy_logps,
    ref_logps,
    desirable,
    reference_point=0.0,
    beta=0.1,
    desirable_weight=1.0,
    undesirable_weight=1.0,
):
    """TRL's KTOTrainer.kto_loss with the KL estimate given (clamped at 0)."""
    p, q = _f64(policy_logps, ref_logps)
    kl = max(float(reference_point), 0.0)
    reward = p - q
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    return np.where(
        np.asarray(desirable, bool),
        desirable_weight * (1 - sigmoid(beta * (reward - kl))),
        undesirable_weight * (1 - sigmoid(beta * (kl - reward))),
    )


def ppo_clip(logprobs, old_logprobs, advantages, epsilon=0.2, dual_clip=None):
    """TRL's PPO policy loss: max(−A ρ, −A clip(ρ, 1 − ε, 1 + ε)) per token; dual clip."""
    lp, old, a = _f64(logprobs, old_logprobs, advantages)
    ratio = np.exp(lp - old)
    loss = np.maximum(-a * ratio, -a * np.clip(ratio, 1 - epsilon, 1 + epsilon))
    if dual_clip is not None:
        loss = np.where(a < 0, np.minimum(loss, -dual_clip * a), loss)
    return loss


def kl_penalty(logprobs, ref_logprobs, estimator="k1"):
    lp, ref = _f64(logprobs, ref_logprobs)
    log_ratio = lp - ref
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    return np.exp(-log_ratio) - 1 + log_ratio


def grpo_advantages(rewards, scale="group", eps=1e-4):
    """TRL's GRPOTrainer: (r − group mean) / (std + eps), torch's unbiased std."""
    (r,) = _f64(rewards)
    centred = r - r.mean(axis=-1, keepdims=True)
    if scale == "none":
        return centred
    std = r.std(axis=-1, ddof=1, keepdims=True) if scale == "group" else r.std(ddof=1)
    return centred / (std + eps)


def token_logprobs(logits, tokens):
    lp = log_softmax(np.asarray(logits, np.float64))
    return np.take_along_axis(lp, np.asarray(tokens)[..., None], axis=-1)[..., 0]


def gradient_penalty(critic_w, critic_v, real, fake, epsilon, target=1.0):
    """WGAN-GP (Gulrajani et al. 2017) for D(x) = Σ_k v_k tanh((x W)_k), gradient by hand."""
    w, v, real, fake, epsilon = _f64(critic_w, critic_v, real, fake, epsilon)
    x_hat = epsilon * real + (1 - epsilon) * fake
    gradient = (v * (1 - np.tanh(x_hat @ w) ** 2)) @ w.T
    return (np.sqrt((gradient**2).sum(axis=1)) - target) ** 2
