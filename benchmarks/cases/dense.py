"""Dense-prediction losses: Dice, generalized and binary Dice against optax, chunked Chamfer
against dense distances."""

from __future__ import annotations

import bench_chamfer
import jax
import numpy as np
import optax
from _harness import Case, normal

import jaxloss

ORDER = 7


def cases(quick: bool, rng) -> list[Case]:
    b, hw, c = (2, 32, 4) if quick else (8, 128, 4)
    logits = normal(rng, b, hw, hw, c)
    onehot = np.eye(c, dtype=np.float32)[rng.integers(0, c, (b, hw, hw))]

    def ours_dice(z, t):
        probs = jax.nn.softmax(z, axis=-1)
        # optax adds its `smooth` once to 2·intersection and once to the sum: 2s as ours.
        return jaxloss.dice(probs, t, smooth_nr=2.0, smooth_dr=2.0)

    def optax_dice(z, t):
        return optax.losses.dice_loss(z, t, smooth=1.0).mean()

    gb, ghw = (4, 32) if quick else (16, 128)
    g_logits = normal(rng, gb, ghw, ghw, c)
    g_onehot = np.eye(c, dtype=np.float32)[rng.integers(0, c, (gb, ghw, ghw))]
    b_logits = normal(rng, gb, ghw, ghw)
    b_targets = rng.integers(0, 2, (gb, ghw, ghw)).astype(np.float32)

    def ours_generalized(z, t):
        # optax's form: batch volumes, the weighted mean of per-class Dice losses, 2s.
        return jaxloss.generalized_dice(
            z,
            t,
            from_logits="softmax",
            batch_weights=True,
            weighted_mean=True,
            smooth_nr=2.0,
            smooth_dr=2.0,
        )

    def optax_generalized(z, t):
        return optax.losses.multiclass_generalized_dice_loss(z, t, smooth=1.0)

    def ours_binary(z, t):
        return jaxloss.dice(
            z[..., None], t[..., None], from_logits="sigmoid", smooth_nr=2.0, smooth_dr=2.0
        )

    def optax_binary(z, t):
        return optax.losses.binary_dice_loss(z, t, smooth=1.0).mean()

    cb, cn, cm = (1, 512, 400) if quick else (2, 4096, 3000)
    x, y = normal(rng, cb, cn, 3), normal(rng, cb, cm, 3)

    def torch_chamfer(torch):
        def loss(x, y):
            d = torch.cdist(x, y).square()
            return (d.min(2).values.mean(1) + d.min(1).values.mean(1)).mean()

        return loss

    return [
        Case(
            "dense",
            f"dice (softmax probabilities), {b} x {hw}x{hw}, {c} classes",
            [logits, onehot],
            (0,),
            {"jaxloss": ours_dice, "optax": optax_dice},
        ),
        Case(
            "dense",
            f"generalized_dice (softmax logits), {gb} x {ghw}x{ghw}, {c} classes",
            [g_logits, g_onehot],
            (0,),
            {"jaxloss": ours_generalized, "optax": optax_generalized},
        ),
        Case(
            "dense",
            f"binary dice (sigmoid logits), {gb} x {ghw}x{ghw}",
            [b_logits, b_targets],
            (0,),
            {"jaxloss": ours_binary, "optax": optax_binary},
        ),
        Case(
            "dense",
            f"chamfer (chunk 1024), B={cb}, N={cn}, M={cm}",
            [x, y],
            (0, 1),
            {
                "jaxloss": bench_chamfer.chunked(1024),
                "naive JAX (dense distances)": bench_chamfer.naive,
            },
            {"torch (cdist, dense)": torch_chamfer},
        ),
    ]
