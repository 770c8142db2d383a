"""What the verification examples share: loss recipes, P x K batches, verification metrics.

Not part of jaxloss: a helper module of ``zero_shot_digits.py`` and ``glyph_verification.py``
(``from _verification import ...``). Both train an embedding per loss on some identities and
verify identities the network never saw by the cosine of L2-normalized embeddings, as face
unlock does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss


class Recipe(NamedTuple):
    """One loss and what it trains besides the network.

    Attributes:
      settings: the hyperparameters, as the table shows them.
      init: ``key -> (head, state)``: trainable parameters beyond the network (a linear
        classifier, class centers, or ``{}``) and loss state that no optimizer touches
        (center-loss centers, a step count, running statistics), or ``()``.
      loss: ``(head, state, embeddings, labels) -> (loss, new_state)``.
    """

    settings: str
    init: Callable[[jax.Array], tuple[Any, Any]]
    loss: Callable[[Any, Any, jax.Array, jax.Array], tuple[jax.Array, Any]]


def unit(x: jax.Array) -> jax.Array:
    """Rows scaled to unit L2 norm."""
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)


def stateless(loss: Callable[[Any, jax.Array, jax.Array], jax.Array]):
    """Lifts ``(head, embeddings, labels) -> loss`` to the ``Recipe.loss`` signature."""
    return lambda head, state, embeddings, labels: (loss(head, embeddings, labels), state)


TRIPLET_MARGIN = 0.2  # FaceNet's, on unit embeddings


def batch_hard_triplet() -> Recipe:
    """Batch-hard triplets (Hermans et al. 2017) on unit embeddings: no head, no state."""
    return Recipe(
        f"unit x, margin {TRIPLET_MARGIN:g}",
        lambda key: ({}, ()),
        stateless(
            lambda head, x, labels: jaxloss.batch_triplet(
                unit(x), labels, margin=TRIPLET_MARGIN, mining="hard"
            )
        ),
    )


def pk_batches(
    rng: np.random.Generator, labels: np.ndarray, classes: int, per_class: int, steps: int
) -> np.ndarray:
    """``[steps, classes * per_class]`` indices: ``per_class`` distinct samples of each of
    ``classes`` random identities (all identities when ``classes`` is their number).

    The pair and triplet losses need several samples per identity in a batch; every loss
    gets the same batches.
    """
    identities = np.unique(labels)
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], identities)
    counts = np.bincount(labels)[identities]
    everyone = classes == len(identities)
    batches = []
    for _ in range(steps):
        picks = range(len(identities)) if everyone else rng.choice(len(identities), classes, False)
        batches.append(
            np.concatenate(
                [order[starts[p] + rng.choice(counts[p], per_class, replace=False)] for p in picks]
            )
        )
    return np.stack(batches)


def cosine_pairs(features: np.ndarray, labels: np.ndarray):
    """Every pair of rows: its cosine similarity, and whether both rows have one label.

    Returns:
      ``(similarity [n, n], scores [n(n-1)/2], same [n(n-1)/2])``.
    """
    unit_rows = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    similarity = unit_rows @ unit_rows.T
    first, second = np.triu_indices(len(labels), k=1)
    return similarity, similarity[first, second], labels[first] == labels[second]


def roc(scores: np.ndarray, same: np.ndarray, fars: Sequence[float]) -> dict:
    """ROC AUC and the true accept rate at each false accept rate, from pair scores.

    Works on millions of pairs: one sort of the different-identity scores. The AUC counts
    ties as half, as ``sklearn.metrics.roc_auc_score`` does.

    Returns:
      ``{"auc", "tar": {far: rate}, "fpr", "tpr"}``; ``fpr``/``tpr`` trace the curve on a
      logarithmic grid of false accept rates (for plotting).
    """
    genuine = np.sort(scores[same])
    impostor = np.sort(scores[~same])
    below = np.searchsorted(impostor, genuine, side="left")
    ties = np.searchsorted(impostor, genuine, side="right") - below
    auc = float(np.mean(below + 0.5 * ties) / len(impostor))

    def tar_at(far: np.ndarray) -> np.ndarray:
        threshold = np.quantile(impostor, 1.0 - np.asarray(far))
        return 1.0 - np.searchsorted(genuine, threshold, side="right") / len(genuine)

    fpr = np.geomspace(1.0 / len(impostor), 1.0, 200)
    return {
        "auc": auc,
        "tar": {far: float(tar_at(far)) for far in fars},
        "fpr": fpr,
        "tpr": tar_at(fpr),
    }


def one_shot(similarity: np.ndarray, labels: np.ndarray, galleries: np.ndarray) -> float:
    """One-shot identification accuracy: each non-gallery sample takes the identity of its
    most similar gallery sample; the mean over the ``[draws, classes]`` galleries."""
    classes = labels[galleries[0]]
    accuracies = []
    for gallery in galleries:
        predicted = classes[np.argmax(similarity[:, gallery], axis=-1)]
        query = np.ones(len(labels), bool)
        query[gallery] = False
        accuracies.append(np.mean(predicted[query] == labels[query]))
    return float(np.mean(accuracies))


def evaluate(
    features: np.ndarray, labels: np.ndarray, galleries: np.ndarray, fars: Sequence[float]
) -> dict:
    """Verification and one-shot identification by cosine similarity.

    Args:
      features: ``[n, dim]`` embeddings (or pixels) of the test samples.
      labels: ``[n]`` their identities.
      galleries: ``[draws, classes]`` indices: one enrolled sample per class per draw.
      fars: the false accept rates to report the true accept rate at.

    Returns:
      ``{"auc", "tar": {far: rate}, "one_shot", "fpr", "tpr", "scores", "same"}``.
    """
    similarity, scores, same = cosine_pairs(features, labels)
    result = roc(scores, same, fars)
    return result | {
        "one_shot": one_shot(similarity, labels, galleries),
        "scores": scores,
        "same": same,
    }


def draw_galleries(rng: np.random.Generator, labels: np.ndarray, draws: int) -> np.ndarray:
    """``[draws, classes]`` random sample indices, one of each class per draw."""
    classes = np.unique(labels)
    return np.stack([rng.choice(np.flatnonzero(labels == c), draws) for c in classes], axis=1)


def mean_std(values: np.ndarray) -> str:
    """A table cell: the value of a single seed, or the mean ± standard deviation over seeds."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def roc_axes(ax, curves: dict[str, dict], far: float, what: str) -> None:
    """ROC curves on a logarithmic false-accept axis, baselines dashed.

    Args:
      ax: the matplotlib axes.
      curves: label -> an ``evaluate`` result; labels "raw pixels" and "untrained network"
        are drawn as dashed baselines.
      far: the false accept rate to mark.
      what: what a "same" pair is, for the axis labels (``"digit"``, ``"identity"``).
    """
    import matplotlib.pyplot as plt

    colors = iter(plt.cm.tab10.colors)
    for label, result in curves.items():
        if label == "raw pixels":
            style = dict(color="black", linestyle="--")
        elif label == "untrained network":
            style = dict(color="gray", linestyle=":")
        else:
            style = dict(color=next(colors))
        ax.plot(result["fpr"], result["tpr"], label=f"{label} (AUC {result['auc']:.3f})", **style)
    ax.axvline(far, color="gray", linewidth=0.8, linestyle=":")
    ax.text(far * 1.15, 0.25, f"FAR = {far:g}", color="gray", rotation=90)
    ax.set_xscale("log")
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel(f"false accept rate (different-{what} pairs accepted), log scale")
    ax.set_ylabel(f"true accept rate (same-{what} pairs accepted)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3, which="both")
