"""The word corpus and the fixed-window language model of the language-model examples.

Not part of jaxloss: a helper module of ``large_vocab_lm.py`` and ``distill_lm.py``, imported
as ``from _corpus import ...``, so that both read the same tokens, the same vocabulary and the
same batches, and build their models the same way.

Data: word-level tokens of the Python standard library's own source code (the top-level
``*.py`` files under ``sysconfig.get_paths()["stdlib"]``, sorted by name; nothing is
downloaded). A token is an identifier, a number or one punctuation character; the 16,383
most frequent tokens of the training files plus ``<unk>`` form the vocabulary. Every tenth
file is held out for validation.

Model: a fixed-window neural language model (Bengio et al. 2003): the embeddings of the
previous ``CONTEXT`` tokens, concatenated, go through an MLP to a hidden state ``h``, which
a vocabulary projection ``W [VOCAB, dim]`` scores against every word.
"""

from __future__ import annotations

import collections
import functools
import glob
import os
import re
import sysconfig
from collections.abc import Sequence

import jax
import numpy as np
from _common import mlp_apply, mlp_init

import jaxloss

VOCAB = 16384  # the 16,383 most frequent training tokens + <unk> (id 0)
CONTEXT = 4  # previous tokens the model sees
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9_]")

Params = dict


def load_corpus() -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """Tokenizes the standard library's top-level modules into train and validation ids.

    Prints one line describing the corpus.

    Returns:
      ``(train_ids, val_ids, vocabulary, number_of_files)``; id 0 is ``<unk>``.
    """
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    train_tokens, val_tokens = [], []
    for i, path in enumerate(files):
        with open(path, encoding="utf-8", errors="replace") as f:
            tokens = TOKEN.findall(f.read())
        (val_tokens if i % 10 == 9 else train_tokens).extend(tokens)
    counts = collections.Counter(train_tokens)
    # Ties broken by the token itself, so the vocabulary does not depend on dict order.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    vocabulary = ["<unk>"] + [token for token, _ in ranked[: VOCAB - 1]]
    index = {token: i for i, token in enumerate(vocabulary)}

    def ids(tokens):
        return np.array([index.get(t, 0) for t in tokens], dtype=np.int32)

    train_ids, val_ids = ids(train_tokens), ids(val_tokens)
    unknown = float(np.mean(train_ids == 0))
    print(
        f"corpus: {len(files)} files, {len(train_ids):,} training / {len(val_ids):,} validation "
        f"tokens, vocabulary {len(vocabulary):,} ({unknown:.1%} of training tokens <unk>)"
    )
    return train_ids, val_ids, vocabulary, len(files)


def windows(ids: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``CONTEXT`` tokens before each position and the token at it.

    Args:
      ids: ``[length]`` token ids.
      positions: ``[n]`` indices, each at least ``CONTEXT``.

    Returns:
      ``(contexts [n, CONTEXT], labels [n])``.
    """
    contexts = ids[positions[:, None] + np.arange(-CONTEXT, 0)]
    return contexts, ids[positions]


def sample_windows(
    rng: np.random.Generator,
    train_ids: np.ndarray,
    val_ids: np.ndarray,
    steps: int,
    batch_size: int,
    n_val: int,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """Training batches drawn with replacement and validation windows drawn without.

    Args:
      rng: the NumPy generator (the training positions are drawn first).
      train_ids: ``[length]`` training token ids.
      val_ids: ``[length]`` validation token ids.
      steps: number of training batches.
      batch_size: windows per training batch.
      n_val: number of distinct validation windows.

    Returns:
      ``(batches, (val_contexts, val_labels))``: ``steps`` ``(contexts, labels)`` pairs of
      :func:`windows`, and the validation windows.
    """
    positions = rng.integers(CONTEXT, len(train_ids), size=(steps, batch_size))
    batches = [windows(train_ids, p) for p in positions]
    val_positions = rng.choice(np.arange(CONTEXT, len(val_ids)), size=n_val, replace=False)
    return batches, windows(val_ids, val_positions)


def init_lm(key: jax.Array, embed_dim: int, widths: Sequence[int]) -> Params:
    """The embedding table, the MLP and the vocabulary projection of a window model.

    Args:
      key: a JAX PRNG key.
      embed_dim: the width of each token's embedding.
      widths: the MLP's layer widths after its input; the last is the hidden size ``dim``.

    Returns:
      ``{"embed": [VOCAB, embed_dim], "mlp": ..., "head": W [VOCAB, dim]}``.
    """
    k_embed, k_mlp, k_head = jax.random.split(key, 3)
    dim = widths[-1]
    return {
        "embed": jax.random.normal(k_embed, (VOCAB, embed_dim)) * 0.1,
        "mlp": mlp_init(k_mlp, [CONTEXT * embed_dim, *widths]),
        "head": jax.random.normal(k_head, (VOCAB, dim)) / np.sqrt(dim),
    }


def hidden_states(params: Params, contexts: jax.Array) -> jax.Array:
    """``h [N, dim]`` from the ``[N, CONTEXT]`` previous tokens."""
    embedded = params["embed"][contexts].reshape(contexts.shape[0], -1)
    return mlp_apply(params["mlp"], embedded, activation=jax.nn.gelu)


def parameter_count(params: Params) -> int:
    """The number of scalars in ``params``."""
    return sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))


@functools.partial(jax.jit, static_argnames="chunk_size")
def _batch_loss_sum(
    params: Params, contexts: jax.Array, labels: jax.Array, chunk_size: int
) -> jax.Array:
    """The summed cross-entropy of one validation batch (chunked: it is the cheaper one)."""
    h = hidden_states(params, contexts)
    return jaxloss.linear_cross_entropy(
        h, params["head"], labels, chunk_size=chunk_size, reduction="sum"
    )


def validation_loss(
    params: Params, contexts: np.ndarray, labels: np.ndarray, chunk_size: int
) -> float:
    """Mean cross-entropy (nats per token) over the validation windows, in batches of 1024."""
    total = sum(
        float(_batch_loss_sum(params, contexts[i : i + 1024], labels[i : i + 1024], chunk_size))
        for i in range(0, len(labels), 1024)
    )
    return total / len(labels)
