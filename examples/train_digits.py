"""Train a small MLP to recognize handwritten digits with ``jaxloss.cross_entropy``.

What it shows: the everyday use of jaxloss inside a plain JAX + optax training loop. The task
is recognizing handwritten digits — the kind of classifier that reads digits off scanned forms
or video frames — on scikit-learn's 8x8 digits dataset (1,797 images, 10 classes; it ships
with scikit-learn, nothing is downloaded). The model is a two-layer MLP whose parameters are a
plain dict pytree (no flax); the train step is ``jax.jit``-compiled and uses
``jax.value_and_grad`` on ``jaxloss.cross_entropy`` with label smoothing, optimized by
``optax.adam``. Evaluation uses the same loss with its defaults (mean reduction, no
smoothing), so both call styles are visible.

Run it from the repository root::

    .venv/bin/python examples/train_digits.py            # full run, >= 0.95 test accuracy
    .venv/bin/python examples/train_digits.py --quick    # a few epochs, in seconds
    .venv/bin/python examples/train_digits.py --epochs 50 --seed 1
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import Params, mlp_apply, mlp_init
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import jaxloss

HIDDEN = 128
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
LABEL_SMOOTHING = 0.1


def loss_fn(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """Training loss: label-smoothed mean cross-entropy.

    Args:
      params: the MLP parameters.
      x: ``[batch, features]`` inputs.
      y: ``[batch]`` integer labels.

    Returns:
      The scalar loss.
    """
    return jaxloss.cross_entropy(mlp_apply(params, x), y, label_smoothing=LABEL_SMOOTHING)


def make_train_step(optimizer: optax.GradientTransformation):
    """Builds the jit-compiled train step for ``optimizer``.

    Args:
      optimizer: the optax optimizer.

    Returns:
      ``train_step(params, opt_state, x, y) -> (params, opt_state, loss)``.
    """

    @jax.jit
    def train_step(params: Params, opt_state: optax.OptState, x: jax.Array, y: jax.Array):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, loss

    return train_step


@jax.jit
def evaluate(params: Params, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Computes the plain cross-entropy (jaxloss defaults) and the accuracy.

    Args:
      params: the MLP parameters.
      x: ``[n, features]`` inputs.
      y: ``[n]`` integer labels.

    Returns:
      ``(loss, accuracy)`` scalars.
    """
    logits = mlp_apply(params, x)
    loss = jaxloss.cross_entropy(logits, y)
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == y)
    return loss, accuracy


def main() -> None:
    """Parses the arguments, trains the MLP and prints the loss and accuracies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="train for 3 epochs only")
    parser.add_argument("--epochs", type=int, help="number of epochs (default 30; quick: 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed for init and shuffling")
    args = parser.parse_args()
    epochs = args.epochs if args.epochs is not None else (3 if args.quick else 30)
    log_every = 1 if epochs <= 10 else 5

    start = time.perf_counter()
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    scaler = StandardScaler().fit(x_train)
    x_train = jnp.asarray(scaler.transform(x_train), dtype=jnp.float32)
    x_test = jnp.asarray(scaler.transform(x_test), dtype=jnp.float32)
    y_train = jnp.asarray(y_train, dtype=jnp.int32)
    y_test = jnp.asarray(y_test, dtype=jnp.int32)
    n_train, n_features = x_train.shape
    print(f"digits: {n_train} train / {x_test.shape[0]} test images, {n_features} pixels")

    key = jax.random.PRNGKey(args.seed)
    params = mlp_init(key, [n_features, HIDDEN, 10])
    optimizer = optax.adam(LEARNING_RATE)
    opt_state = optimizer.init(params)
    train_step = make_train_step(optimizer)

    rng = np.random.default_rng(args.seed)
    n_batches = n_train // BATCH_SIZE  # drop the ragged last batch: one compiled shape
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n_train)
        losses = []
        for b in range(n_batches):
            idx = order[b * BATCH_SIZE : (b + 1) * BATCH_SIZE]
            params, opt_state, loss = train_step(params, opt_state, x_train[idx], y_train[idx])
            losses.append(loss)
        if epoch % log_every == 0 or epoch == epochs:
            test_loss, test_acc = evaluate(params, x_test, y_test)
            train_loss = float(jnp.mean(jnp.stack(losses)))
            print(
                f"epoch {epoch:3d}  train loss (smoothed) {train_loss:.4f}  "
                f"test loss {float(test_loss):.4f}  test acc {float(test_acc):.3f}"
            )

    _, train_acc = evaluate(params, x_train, y_train)
    _, test_acc = evaluate(params, x_test, y_test)
    print(f"done in {time.perf_counter() - start:.1f} s")
    print(f"train accuracy: {float(train_acc):.4f}")
    print(f"test accuracy: {float(test_acc):.4f}")


if __name__ == "__main__":
    main()
