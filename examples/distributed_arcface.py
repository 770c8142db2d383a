"""ArcFace on 8 devices: data-parallel embeddings, a class-sharded head, one device's numbers.

What it shows: how a face- or speaker-verification model trains when the batch *and* the
classifier are split over devices, and that jaxloss makes that the same computation as on
one device. The embedding network (a small MLP, ``flax.nnx``) is replicated and each device
embeds its slice of the batch; the ArcFace head (``jaxloss.nn.MarginSoftmaxHead``) owns the
class centers, and each device holds 1/8 of them (model parallel, as Partial FC does for
millions of identities). Each device scores every device's embeddings against its own
classes; the softmax normalizers are summed over the devices, and the mean is over the
global batch. The optax update runs on each device's shards.

The same model, from the same initial parameters, is also trained on one device on the same
batches. The script prints both losses side by side (every step with ``--quick``) and
fails if at any step they differ by more than 1e-5 × max(1, loss).

Data: scikit-learn's 8x8 handwritten digits (1,797 images, shipped with scikit-learn). The
head holds 16 centers for the 10 digits, so that 8 devices hold 2 each (the 6 spare
classes, never a target, are extra negatives, as padding classes are in Partial FC).

The 8 devices are virtual CPU devices (``--xla_force_host_platform_device_count=8``, set
below before JAX starts), so this runs on any machine.

Run it from the repository root::

    .venv/bin/python examples/distributed_arcface.py --quick   # 20 steps, under a minute
    .venv/bin/python examples/distributed_arcface.py           # 200 steps and test accuracy
"""

from __future__ import annotations

import os

DEVICES = 8
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={DEVICES}"
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from jaxloss.nn import MarginSoftmaxHead  # noqa: E402

NUM_CENTERS = 16  # 10 digits, padded to a multiple of the 8 devices
EMBEDDING = 32
BATCH = 128  # 16 rows per device
TOLERANCE = 1e-5


class Model(nnx.Module):
    """An MLP embedder and an ArcFace head over its embeddings."""

    def __init__(self, *, class_axis_name: str | None, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(64, 128, rngs=rngs)
        self.embed = nnx.Linear(128, EMBEDDING, rngs=rngs)
        self.head = MarginSoftmaxHead(
            EMBEDDING,
            NUM_CENTERS,
            loss="arcface",
            scale=16.0,
            margin=0.3,
            class_axis_name=class_axis_name,
            rngs=rngs,
        )

    def embeddings(self, x: jax.Array) -> jax.Array:
        return self.embed(jax.nn.gelu(self.hidden(x)))

    def __call__(self, x: jax.Array, labels: jax.Array, axis_name: str | None = None):
        return self.head(self.embeddings(x), labels, axis_name=axis_name)


def train_step(tx, graphdef, axis_name=None):
    """One optax step on the model's parameter state; a pure function of arrays."""

    def step(params, opt_state, x, labels):
        def loss_fn(params):
            return nnx.merge(graphdef, params)(x, labels, axis_name=axis_name)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def batches(x: np.ndarray, y: np.ndarray, steps: int, seed: int):
    """``steps`` random batches of ``BATCH`` rows (without replacement within a batch)."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        rows = rng.choice(len(x), BATCH, replace=False)
        yield x[rows], y[rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 steps (CI)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    steps = args.steps or (20 if args.quick else 200)
    start = time.perf_counter()

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.3, random_state=args.seed, stratify=digits.target
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = (scaler.transform(a).astype(np.float32) for a in (x_train, x_test))
    y_train = y_train.astype(np.int32)

    # The same initial parameters twice: one model for one device, one class-sharded.
    one = Model(class_axis_name=None, rngs=nnx.Rngs(args.seed))
    sharded_model = Model(class_axis_name="devices", rngs=nnx.Rngs(args.seed))
    graphdef_one, params_one = nnx.split(one, nnx.Param)
    graphdef_sharded, params_sharded = nnx.split(sharded_model, nnx.Param)
    for a, b in zip(jax.tree.leaves(params_one), jax.tree.leaves(params_sharded), strict=True):
        np.testing.assert_array_equal(a, b)

    tx = optax.adam(3e-3)
    opt_one, opt_sharded = tx.init(params_one), tx.init(params_sharded)

    # One device: the whole batch, all 16 centers.
    step_one = jax.jit(train_step(tx, graphdef_one))

    # Eight devices: the batch split over "devices", the centers (and their optimizer
    # moments) split by class over the same axis, the MLP replicated.
    mesh = jax.make_mesh((DEVICES,), ("devices",), axis_types=(jax.sharding.AxisType.Auto,))
    # The centers carry P("devices", None); optax's moments keep that metadata.
    param_specs = nnx.get_partition_spec(params_sharded)
    opt_specs = nnx.get_partition_spec(opt_sharded)
    step_sharded = jax.jit(
        jax.shard_map(
            train_step(tx, graphdef_sharded, axis_name="devices"),
            mesh=mesh,
            in_specs=(param_specs, opt_specs, P("devices"), P("devices")),
            out_specs=(param_specs, opt_specs, P()),
        )
    )

    centers = params_sharded["head"]["centers"][...]
    print(
        f"{jax.device_count()} devices ({jax.devices()[0].platform}); batch {BATCH} = "
        f"{BATCH // DEVICES} rows per device; centers {centers.shape}, "
        f"{NUM_CENTERS // DEVICES} classes per device\n"
    )
    print(f"{'step':>4}  {'one device':>12}  {'8 devices':>12}  {'difference':>13}")
    worst = 0.0
    for step, (xb, yb) in enumerate(batches(x_train, y_train, steps, args.seed), start=1):
        params_one, opt_one, loss_one = step_one(params_one, opt_one, xb, yb)
        params_sharded, opt_sharded, loss_sharded = step_sharded(
            params_sharded, opt_sharded, xb, yb
        )
        # |difference| / max(1, |loss|): relative for large losses, absolute below 1.
        diff = abs(float(loss_sharded) - float(loss_one)) / max(1.0, abs(float(loss_one)))
        worst = max(worst, diff)
        if args.quick or step % 10 == 0 or step == 1:
            print(
                f"{step:>4}  {float(loss_one):>12.6f}  {float(loss_sharded):>12.6f}  {diff:>13.2e}"
            )

    for name, params, graphdef in (
        ("one device", params_one, graphdef_one),
        ("8 devices", params_sharded, graphdef_sharded),
    ):
        model = nnx.merge(graphdef, params)
        cosines = model.head.cosines(model.embeddings(jnp.asarray(x_test)))
        accuracy = float(jnp.mean(jnp.argmax(cosines, axis=1) == y_test))
        print(f"test accuracy (nearest center), {name}: {accuracy:.4f}")
    print(f"\nlargest difference over {steps} steps: {worst:.2e} (limit {TOLERANCE:g})")
    print(f"time: {time.perf_counter() - start:.1f} s")
    if worst > TOLERANCE:
        raise SystemExit(f"the sharded run differs from one device by {worst:.2e}")


if __name__ == "__main__":
    main()
