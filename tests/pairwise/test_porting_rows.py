"""The pytorch-metric-learning rows of docs/porting.md, run as the page spells them.

``docs/porting_pml.md``'s rows are checked by ``tests/_suite/test_catalogues.py`` (each
peer's ``spelling`` must be on that page); the short table of ``docs/porting.md`` is another
copy of a few of them, and three of its rows had drifted (τ = 0.1 for PML's 0.07, margin 1.0
and no normalization for PML's 0.05 on normalized embeddings, 0.5 rad for 28.6°). Each
test below finds its row's jaxloss call on the page and runs that call against PML.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import torch
from pytorch_metric_learning import losses

import jaxloss

PAGE = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "porting.md").read_text()


def _row(peer_call: str, jaxloss_call: str) -> None:
    """The page has a row with this PML call and this jaxloss call."""
    rows = [line for line in PAGE.splitlines() if line.startswith(f"| `{peer_call}`")]
    assert rows, f"no row for {peer_call} on docs/porting.md"
    assert any(f"[`{jaxloss_call}`]" in row for row in rows), (jaxloss_call, rows)


def _tensor(x, grad=False):
    return torch.tensor(np.asarray(x, np.float64), requires_grad=grad)


def _embeddings(seed, batch=16, dim=6, classes=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, dim)).astype(np.float32)
    return x, rng.integers(0, classes, size=batch).astype(np.int32)


def test_ntxent_two_views_row():
    _row(
        "NTXentLoss(temperature=0.07)(torch.cat([z1, z2]), labels)",
        "nt_xent(z1, z2, temperature=0.07)",
    )
    z1, _ = _embeddings(0, batch=8)
    z2, _ = _embeddings(1, batch=8)
    views = _tensor(np.concatenate([z1, z2]), grad=True)
    labels = torch.arange(8).repeat(2)
    expected = losses.NTXentLoss(temperature=0.07)(views, labels)
    expected.backward()
    value, grads = jax.value_and_grad(
        lambda z1, z2: jaxloss.nt_xent(z1, z2, temperature=0.07), argnums=(0, 1)
    )(z1, z2)
    np.testing.assert_allclose(value, expected.item(), rtol=1e-5)
    np.testing.assert_allclose(np.concatenate(grads), views.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_triplet_margin_without_a_miner_row():
    _row(
        "TripletMarginLoss(margin=0.05)(embeddings, labels)",
        "batch_triplet(embeddings / jnp.linalg.norm(embeddings, axis=1, keepdims=True), "
        'labels, margin=0.05, mining="all")',
    )
    embeddings, labels = _embeddings(2)
    x = _tensor(embeddings, grad=True)
    expected = losses.TripletMarginLoss(margin=0.05)(x, torch.tensor(labels, dtype=torch.long))
    expected.backward()

    def ours(embeddings):
        return jaxloss.batch_triplet(
            embeddings / jnp.linalg.norm(embeddings, axis=1, keepdims=True),
            labels,
            margin=0.05,
            mining="all",
        )

    value, grad = jax.value_and_grad(ours)(embeddings)
    assert expected.item() > 0.1  # triplets inside the margin: the row is not 0 = 0
    np.testing.assert_allclose(value, expected.item(), rtol=1e-5)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_arcface_row_in_degrees_and_past_pi():
    _row(
        "ArcFaceLoss(num_classes, embedding_size, margin=28.6, scale=64)",
        "arcface(embeddings, centers, labels, margin=np.radians(28.6), scale=64.0)",
    )
    embeddings, labels = _embeddings(3, classes=5)
    loss = losses.ArcFaceLoss(5, 6, margin=28.6, scale=64)
    centers = np.asarray(loss.W.detach().numpy().T, np.float32)
    # Half the rows point away from their class center: θ + m > π, both take the fallback.
    flip = np.arange(len(labels)) % 2 == 0
    embeddings[flip] = -centers[labels[flip]] + 0.05 * embeddings[flip]
    x = _tensor(embeddings, grad=True)
    loss.W = torch.nn.Parameter(_tensor(centers.T))
    expected = loss(x, torch.tensor(labels, dtype=torch.long))
    expected.backward()
    value, grad = jax.value_and_grad(
        lambda embeddings: jaxloss.arcface(
            embeddings, centers, labels, margin=np.radians(28.6), scale=64.0
        )
    )(embeddings)
    np.testing.assert_allclose(value, expected.item(), rtol=1e-5)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-4, atol=1e-5)
