"""MONAI's pairwise losses and their jaxloss translations (``PEERS``; see
``tests/_suite/peer.py``).

MONAI's ``ContrastiveLoss`` is SimCLR's NT-Xent of two views ``input`` and ``target``
``[B, D]``: each of the ``2B`` embeddings is an anchor whose positive is its pair's other
view and whose denominator sums every other embedding, the mean over the ``2B`` anchors;
jaxloss's ``nt_xent(z1, z2)``, whose ``temperature`` defaults to 0.1 where MONAI's does to 0.5.
"""

from __future__ import annotations

import numpy as np

import jaxloss
from tests._suite.peer import Peer


def _views(rng) -> tuple:
    batch, dim = int(rng.integers(2, 7)), int(rng.integers(2, 9))
    return tuple(rng.normal(size=(batch, dim)).astype(np.float32) for _ in range(2))


def _monai_contrastive(z1, z2, **options):
    from monai.losses import ContrastiveLoss

    return ContrastiveLoss(**options)(z1, z2)


PEERS: dict[str, Peer] = {
    "monai:ContrastiveLoss": Peer(
        _monai_contrastive,
        lambda z1, z2, temperature=0.5: jaxloss.nt_xent(z1, z2, temperature=temperature),
        _views,
        "nt_xent(input, target, temperature=temperature)",
        options=({}, {"temperature": 0.1}, {"temperature": 2.0}),
        differentiable=(0, 1),
    ),
}
