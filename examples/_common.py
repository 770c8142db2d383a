"""What every example shares: options, data, a plain-JAX MLP, a training loop, result files.

Not part of jaxloss: a helper module of the examples, imported as ``from _common import ...``
(Python puts a script's own folder first on ``sys.path``). Each example still reads top to
bottom on its own; only the plumbing that would otherwise be copied into every script lives
here.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from tqdm.auto import tqdm

matplotlib.use("Agg")  # no screen needed; figures are written as PNG files

Params = dict[str, dict[str, jax.Array]]

OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "output")


def parse_args(doc: str | None, extra: Callable[[argparse.ArgumentParser], None] | None = None):
    """The options every example takes: ``--quick``, ``--seed`` and ``--out``.

    Args:
      doc: the script's module docstring; its first line is the description.
      extra: optional ``parser -> None`` adding the script's own options.

    Returns:
      The parsed arguments; ``args.out`` exists as a folder when this returns.
    """
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run, for CI (< 60 s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, init and batches")
    parser.add_argument(
        "--out",
        default=OUTPUT,
        help="folder for the PNG figures and the Markdown result table (default examples/output)",
    )
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    return args


def digits(standardize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 handwritten digits (1,797 images; shipped, never downloaded).

    Args:
      standardize: scale the pixels (0..16) to [0, 1] and center them per pixel.

    Returns:
      ``(images [1797, 64] float32, labels [1797] int32)``.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.data.astype(np.float32) / 16.0
    if standardize:
        x = x - x.mean(axis=0)
    return x, data.target.astype(np.int32)


def mlp_init(key: jax.Array, sizes: Sequence[int]) -> Params:
    """He-normal weights and zero biases for an MLP with layer widths ``sizes``.

    Args:
      key: a JAX PRNG key.
      sizes: layer widths, input first, output last.

    Returns:
      ``{"layer0": {"w": ..., "b": ...}, ...}``, a plain pytree.
    """
    params = {}
    keys = jax.random.split(key, len(sizes) - 1)
    for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True)):
        w = jax.random.normal(k, (n_in, n_out)) * jnp.sqrt(2.0 / n_in)
        params[f"layer{i}"] = {"w": w, "b": jnp.zeros((n_out,))}
    return params


def mlp_apply(params: Params, x: jax.Array, activation: Callable = jax.nn.relu) -> jax.Array:
    """Runs the MLP: ``activation`` between layers, none after the last.

    Args:
      params: from :func:`mlp_init`.
      x: ``[..., sizes[0]]`` inputs.
      activation: the nonlinearity.

    Returns:
      ``[..., sizes[-1]]`` outputs.
    """
    n_layers = len(params)
    for i in range(n_layers):
        layer = params[f"layer{i}"]
        x = x @ layer["w"] + layer["b"]
        if i < n_layers - 1:
            x = activation(x)
    return x


def conv_init(key: jax.Array, layers: Sequence[tuple[int, int, int, int]]) -> Params:
    """He-normal convolution kernels (HWIO) and zero biases for ``layers``, each
    ``(kernel size, input channels, output channels, dilation)``."""
    params = {}
    keys = jax.random.split(key, len(layers))
    for i, (k, (size, n_in, n_out, _)) in enumerate(zip(keys, layers, strict=True)):
        w = jax.random.normal(k, (size, size, n_in, n_out)) * jnp.sqrt(2.0 / (size * size * n_in))
        params[f"conv{i}"] = {"w": w, "b": jnp.zeros((n_out,))}
    return params


def conv_apply(
    params: Params, images: jax.Array, layers: Sequence[tuple[int, int, int, int]]
) -> jax.Array:
    """A fully convolutional network of dilated ``"SAME"`` convolutions with ReLUs between
    them, channels last: ``[batch, h, w, c]`` in, the last layer's channels out."""
    x = images
    for i, (_, _, _, dilation) in enumerate(layers):
        layer = params[f"conv{i}"]
        x = jax.lax.conv_general_dilated(
            x,
            layer["w"],
            window_strides=(1, 1),
            padding="SAME",
            rhs_dilation=(dilation, dilation),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        x = x + layer["b"]
        if i < len(layers) - 1:
            x = jax.nn.relu(x)
    return x


def batches(rng: np.random.Generator, n: int, batch_size: int, steps: int) -> Iterator[np.ndarray]:
    """``steps`` index arrays of ``batch_size`` rows, reshuffling ``range(n)`` each epoch.

    The last partial batch of an epoch is dropped, so every step has one compiled shape.
    """
    order = rng.permutation(n)
    position = 0
    for _ in range(steps):
        if position + batch_size > n:
            order, position = rng.permutation(n), 0
        yield order[position : position + batch_size]
        position += batch_size


def fit(
    loss_fn: Callable[..., jax.Array],
    params,
    data: Iterable[tuple],
    optimizer: optax.GradientTransformation,
    steps: int,
    desc: str,
    on_step: Callable[[int, object], None] | None = None,
):
    """Minimizes ``loss_fn(params, *batch)`` with ``optimizer`` over ``data``, with a tqdm bar.

    Args:
      loss_fn: ``(params, *batch) -> scalar loss``.
      params: the initial parameters (any pytree).
      data: an iterable of at least ``steps`` batches, each a tuple of arrays.
      optimizer: the optax optimizer.
      steps: number of steps.
      desc: the progress bar's label.
      on_step: optional ``(steps_done, params) -> None``, called after every step (to
        record a validation curve, say).

    Returns:
      ``(params, losses)``: the trained parameters and the ``steps`` training losses (NumPy).
    """

    @jax.jit
    def step(params, opt_state, *batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = optimizer.init(params)
    losses = []
    bar = tqdm(zip(range(steps), data, strict=False), total=steps, desc=desc, leave=False)
    for i, batch in bar:
        params, opt_state, loss = step(params, opt_state, *batch)
        losses.append(loss)
        if on_step is not None:
            on_step(i + 1, params)
    losses = np.asarray(jax.device_get(losses), dtype=np.float64)
    if not np.all(np.isfinite(losses)):
        raise FloatingPointError(f"{desc}: the training loss became NaN or inf")
    return params, losses


def temp_memory(fn: Callable, args: Sequence, argnums: int | Sequence[int] = 0) -> int:
    """XLA's temporary buffer bytes for the compiled ``value_and_grad`` of ``fn``.

    Args:
      fn: a function returning a scalar.
      args: its arguments as ``jax.ShapeDtypeStruct``: nothing is allocated or run.
      argnums: the arguments the gradient is taken with respect to.

    Returns:
      ``compiled.memory_analysis().temp_size_in_bytes``.
    """
    compiled = jax.jit(jax.value_and_grad(fn, argnums=argnums)).lower(*args).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def mebibytes(n_bytes: int) -> str:
    """``n_bytes`` in MiB, for a table."""
    return f"{n_bytes / 2**20:,.1f} MiB"


def memory_bars(ax, memory: dict[str, Sequence[int]], shape_names: Sequence[str]) -> None:
    """Grouped bars of byte counts on a log scale, one group per shape, labelled in MiB.

    Args:
      ax: the matplotlib axes.
      memory: ``{label: bytes at each shape}``, one bar series per label.
      shape_names: one name per shape; the first is marked "(trained)".
    """
    x = np.arange(len(shape_names))
    width = 0.8 / len(memory)
    for i, (label, n_bytes) in enumerate(memory.items()):
        mib = np.array(n_bytes) / 2**20
        bars = ax.bar(x + (i - (len(memory) - 1) / 2) * width, mib, width=width, label=label)
        ax.bar_label(bars, [f"{m:,.0f}" if m >= 10 else f"{m:.1f}" for m in mib], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(top=50 * max(max(b) for b in memory.values()) / 2**20)  # room for the legend
    ticks = [
        s.replace(", ", "\n") + ("\n(trained)" if i == 0 else "") for i, s in enumerate(shape_names)
    ]
    ax.set_xticks(x, ticks)
    ax.set(
        ylabel="XLA temporary memory (MiB, log scale)",
        title="Temporary memory of the loss's value_and_grad",
    )
    ax.legend(loc="upper left")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; floats are written with 4 significant digits."""

    def cell(value: object) -> str:
        if isinstance(value, float | np.floating):
            return f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def report(out: str, name: str, title: str, table: str, started: float, notes: str = "") -> None:
    """Prints the result table and writes it to ``out/name.md`` (for the gallery).

    Args:
      out: the output folder.
      name: the example's name (file stem).
      title: one line saying what the table measures.
      table: from :func:`markdown_table`.
      started: ``time.perf_counter()`` at the start, for the run time.
      notes: optional lines printed and saved under the table.
    """
    seconds = time.perf_counter() - started
    text = f"{title}\n\n{table}\n"
    if notes:
        text += f"\n{notes}\n"
    text += f"\nRun time: {seconds:.1f} s ({jax.default_backend()}).\n"
    print("\n" + text)
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write(text)


def save_figure(fig, out: str, name: str) -> str:
    """Writes ``fig`` to ``out/name.png`` (dpi 110) and closes it; returns the path."""
    import matplotlib.pyplot as plt

    path = os.path.join(out, f"{name}.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")
    return path
