"""Float64 NumPy references of the Lovász losses, transcribed from Berman et al.'s
Algorithm 1 (and their ``lovasz_grad``): left-out pixels are dropped, not weighted.

Each returns the values of ``reduction="none"``: ``[batch]`` per image, or over the whole
batch ``[num_classes]`` (Lovász-Softmax) or a scalar (Lovász hinge).
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import log_softmax as log_softmax


def lovasz_grad(foreground_sorted):
    """Berman et al.'s ``lovasz_grad``: the Jaccard loss's growth along the sorted errors."""
    gts = foreground_sorted.sum()
    intersection = gts - np.cumsum(foreground_sorted)
    union = gts + np.cumsum(1 - foreground_sorted)
    jaccard = 1 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_extension(errors, foreground, hinge=False):
    """Algorithm 1 on one set of kept pixels: errors sorted in decreasing order, dotted
    with the Jaccard loss's growth (``relu`` after the sort for the hinge)."""
    order = np.argsort(-errors, kind="stable")
    sorted_errors = errors[order]
    if hinge:
        sorted_errors = np.maximum(sorted_errors, 0)
    return float(sorted_errors @ lovasz_grad(foreground[order].astype(np.float64)))


def _kept(labels, num_classes, ignore_index, where):
    """Which pixels ``[batch, pixels]`` count."""
    keep = (labels >= 0) & (labels < num_classes)
    if ignore_index is not None:
        keep &= labels != ignore_index
    if where is not None:
        keep &= np.asarray(where, bool)[:, None]
    return keep


def _softmax_of_set(probs, labels, num_classes, classes):
    """The per-class losses of one set of kept pixels, and which classes are averaged."""
    losses, chosen = np.zeros(num_classes), np.zeros(num_classes, bool)
    if labels.size == 0:
        return losses, chosen
    for c in range(num_classes):
        foreground = labels == c
        if classes == "present" and not foreground.any():
            continue
        chosen[c] = True
        losses[c] = lovasz_extension(np.abs(foreground - probs[:, c]), foreground)
    return losses, chosen


def lovasz_softmax(
    probs,
    labels,
    classes="present",
    per_image=True,
    ignore_index=None,
    from_logits=None,
    where=None,
):
    """Berman et al.'s ``lovasz_softmax`` with both ``per_image`` modes; an image with no
    averaged class is 0 (and left out of the mean)."""
    p = np.asarray(probs, np.float64)
    if from_logits == "softmax":
        p = np.exp(log_softmax(p))
    batch, num_classes = p.shape[0], p.shape[-1]
    p = p.reshape(batch, -1, num_classes)
    labels = np.asarray(labels).reshape(batch, -1).astype(np.int64)
    keep = _kept(labels, num_classes, ignore_index, where)
    if not per_image:
        losses, chosen = _softmax_of_set(p[keep], labels[keep], num_classes, classes)
        return np.where(chosen, losses, 0)
    values = np.zeros(batch)
    for b in range(batch):
        losses, chosen = _softmax_of_set(p[b][keep[b]], labels[b][keep[b]], num_classes, classes)
        if chosen.any():
            values[b] = losses[chosen].mean()
    return values


def lovasz_hinge(logits, labels, per_image=True, ignore_index=None, where=None):
    """Berman et al.'s ``lovasz_hinge`` (labels other than 0 and 1 dropped)."""
    z = np.asarray(logits, np.float64)
    batch = z.shape[0]
    z = z.reshape(batch, -1)
    labels = np.asarray(labels).reshape(batch, -1).astype(np.int64)
    keep = _kept(labels, 2, ignore_index, where)

    def of_set(scores, y):
        if y.size == 0:
            return 0.0
        return lovasz_extension(1 - scores * (2 * y - 1), y == 1, hinge=True)

    if not per_image:
        return np.asarray(of_set(z[keep], labels[keep]))
    return np.array([of_set(z[b][keep[b]], labels[b][keep[b]]) for b in range(batch)])


def counted_images(labels, num_classes, ignore_index=None, where=None):
    """The images a per-image mean counts: those with a kept pixel (so a present class)."""
    labels = np.asarray(labels).reshape(np.shape(labels)[0], -1)
    return _kept(labels, num_classes, ignore_index, where).any(axis=1)
