"""ArcFace, CosFace against pytorch-metric-learning; linear cross-entropy against optax, torch."""

from __future__ import annotations

import bench_linear_cross_entropy
import numpy as np
from _harness import PML, Case, normal, torch_device

import jaxloss

ORDER = 5


def cases(quick: bool, rng) -> list[Case]:
    b, d, c = (64, 32, 1000) if quick else (512, 128, 10000)
    embeddings, centers = normal(rng, b, d), normal(rng, c, d)
    labels = rng.integers(0, c, b).astype(np.int32)

    def pml_head(loss_name: str, **options):
        def make(torch):
            from pytorch_metric_learning import losses

            head = getattr(losses, loss_name)(num_classes=c, embedding_size=d, **options)
            head.W.data = torch.tensor(centers.T.copy())  # the same centers as jaxloss's
            head.to(torch_device(torch))
            return lambda x, w, y: head(x, y)

        return make

    n, h, v = (256, 64, 4096) if quick else (2048, 512, 32768)
    hidden, weight = normal(rng, n, h, scale=0.125), normal(rng, v, h, scale=0.125)
    tokens = rng.integers(0, v, n).astype(np.int32)
    arc = f"B={b}, D={d}, C={c}"
    return [
        Case(
            "margin",
            f"arcface (s=64, m=0.5), {arc}",
            [embeddings, centers, labels],
            (0, 1),
            {"jaxloss": jaxloss.arcface},
            {f"{PML} ArcFaceLoss": pml_head("ArcFaceLoss", margin=np.degrees(0.5), scale=64)},
        ),
        Case(
            "margin",
            f"cosface (s=64, m=0.35), {arc}",
            [embeddings, centers, labels],
            (0, 1),
            {"jaxloss": jaxloss.cosface},
            {f"{PML} CosFaceLoss": pml_head("CosFaceLoss", margin=0.35, scale=64)},
        ),
        Case(
            "margin",
            f"linear_cross_entropy (chunk 1024), N={n}, D={h}, V={v}",
            [hidden, weight, tokens],
            (0, 1),
            {
                "jaxloss": bench_linear_cross_entropy.chunked(1024),
                "optax (materialized logits)": bench_linear_cross_entropy.naive,
            },
            {"torch": lambda torch: torch.nn.functional.linear_cross_entropy},
        ),
    ]
