"""Fit a linear model through gross target errors with ``jaxloss.huber``, ``mae`` and ``log_cosh``.

What it shows: how much a handful of wrong labels costs a least-squares fit, and how the
robust regression losses of jaxloss shrug them off. Real measurements carry gross errors —
a value typed in the wrong unit, a sensor stuck at its maximum, a misplaced digit — and
squared error lets each of them pull the fit by the square of its size, while the absolute
error, Huber's loss and log-cosh grow only linearly in the tails.

Data: scikit-learn's diabetes dataset (442 patients, 10 standardized measurements such as
age, BMI, blood pressure and six blood serum values; the target is a score of disease
progression one year later; it ships with scikit-learn, nothing is downloaded). For each
repeat ``r`` (seed ``--seed + r``), the patients are split 75/25 into train and test, the
features and the target are standardized with the training set's statistics, and then 10%
of the training targets (33 of 331) are corrupted: each gets ``+U(4, 8)`` standard deviations
of the clean target added (about +300 to +600 progression points, always upward, as a
unit or data-entry error would be). The test targets are never corrupted.

The model is a linear regression (10 weights and a bias, starting from zero), trained full
batch with Adam and a cosine learning-rate decay, once per loss: ``jaxloss.mse``,
``jaxloss.mae``, ``jaxloss.huber`` (``delta=1``, one clean standard deviation) and
``jaxloss.log_cosh`` on the corrupted targets, plus a reference fit with ``jaxloss.mse`` on
the clean targets. All repeats train at once: the parameters carry a leading repeat axis and
the per-repeat losses (``jax.vmap``) are summed, so each repeat gets exactly its own gradient.
The table gives the clean-test RMSE, MAE and mean error (bias) in progression points, mean ±
standard deviation over the repeats; the script fails unless Huber's mean RMSE beats MSE's.

Run it from the repository root::

    .venv/bin/python examples/robust_regression.py            # 50 repeats
    .venv/bin/python examples/robust_regression.py --quick    # 5 repeats, a few seconds
    .venv/bin/python examples/robust_regression.py --repeats 50 --seed 1
"""

from __future__ import annotations

import functools
import itertools
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from _common import fit, markdown_table, parse_args, report, save_figure
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

import jaxloss

OUTLIER_FRACTION = 0.1
OUTLIER_SHIFT = (4.0, 8.0)  # added to a corrupted target, in clean standard deviations
HUBER_DELTA = 1.0
LEARNING_RATE = 0.05

# (label, loss, trained on the clean targets?)
RUNS = [
    ("MSE, clean targets (reference)", jaxloss.mse, True),
    ("MSE", jaxloss.mse, False),
    ("MAE", jaxloss.mae, False),
    (f"Huber (delta={HUBER_DELTA:g})", functools.partial(jaxloss.huber, delta=HUBER_DELTA), False),
    ("log-cosh", jaxloss.log_cosh, False),
]


def make_repeats(seed: int, repeats: int) -> dict[str, np.ndarray]:
    """Splits, standardizes and corrupts the diabetes data once per repeat.

    Args:
      seed: the first repeat's seed; repeat ``r`` uses ``seed + r``.
      repeats: number of repeats.

    Returns:
      A dict of stacked float32 arrays: ``x_train`` ``[repeats, 331, 10]``, ``y_train``
      (clean) and ``y_corrupted`` ``[repeats, 331]``, ``outlier`` (bool, same shape),
      ``x_test`` ``[repeats, 111, 10]``, ``y_test`` ``[repeats, 111]`` (clean), and the target
      scales ``y_mean``, ``y_std`` ``[repeats]`` that map standardized targets back to
      progression points.
    """
    data = load_diabetes()
    columns = {k: [] for k in ("x_train", "y_train", "y_corrupted", "outlier", "x_test", "y_test")}
    columns.update(y_mean=[], y_std=[])
    for r in range(repeats):
        rng = np.random.default_rng(seed + r)
        x_train, x_test, y_train, y_test = train_test_split(
            data.data, data.target, test_size=0.25, random_state=seed + r
        )
        x_mean, x_std = x_train.mean(axis=0), x_train.std(axis=0)
        y_mean, y_std = y_train.mean(), y_train.std()
        y_train = (y_train - y_mean) / y_std
        n_outliers = round(OUTLIER_FRACTION * len(y_train))
        outlier = np.zeros(len(y_train), dtype=bool)
        outlier[rng.choice(len(y_train), n_outliers, replace=False)] = True
        y_corrupted = y_train + outlier * rng.uniform(*OUTLIER_SHIFT, size=len(y_train))
        columns["x_train"].append((x_train - x_mean) / x_std)
        columns["y_train"].append(y_train)
        columns["y_corrupted"].append(y_corrupted)
        columns["outlier"].append(outlier)
        columns["x_test"].append((x_test - x_mean) / x_std)
        columns["y_test"].append((y_test - y_mean) / y_std)
        columns["y_mean"].append(y_mean)
        columns["y_std"].append(y_std)
    stacked = {k: np.stack(v) for k, v in columns.items()}
    return {k: v if v.dtype == bool else v.astype(np.float32) for k, v in stacked.items()}


def predict(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    """Linear predictions of every repeat's model on its own inputs.

    Args:
      params: ``{"w": [repeats, features], "b": [repeats]}``.
      x: ``[repeats, n, features]``.

    Returns:
      ``[repeats, n]`` predicted (standardized) targets.
    """
    return jnp.einsum("rnf,rf->rn", x, params["w"]) + params["b"][:, None]


def train(loss, x: np.ndarray, y: np.ndarray, steps: int, desc: str) -> dict[str, jax.Array]:
    """Fits one linear model per repeat by full-batch Adam on ``loss``.

    Args:
      loss: a jaxloss regression loss ``(predictions, targets) -> scalar mean``.
      x: ``[repeats, n, features]`` training inputs.
      y: ``[repeats, n]`` training targets.
      steps: number of Adam steps.
      desc: the progress bar's label.

    Returns:
      The trained ``{"w": [repeats, features], "b": [repeats]}``.
    """
    repeats, _, features = x.shape
    params = {"w": jnp.zeros((repeats, features)), "b": jnp.zeros((repeats,))}

    def objective(params, x, y):
        # Repeats share no parameters, so the sum gives each one its own loss's gradient.
        return jnp.sum(jax.vmap(loss)(predict(params, x), y))

    optimizer = optax.adam(optax.cosine_decay_schedule(LEARNING_RATE, steps))
    data = itertools.repeat((jnp.asarray(x), jnp.asarray(y)))
    params, _ = fit(objective, params, data, optimizer, steps, desc)
    return params


def main() -> None:
    """Trains each loss on every repeat, prints the table, draws the figure, checks Huber."""

    def extra(parser):
        parser.add_argument("--repeats", type=int, help="outlier draws (default 50; quick: 5)")
        parser.add_argument("--steps", type=int, help="Adam steps (default 2000; quick: 500)")

    args = parse_args(__doc__, extra)
    repeats = args.repeats or (5 if args.quick else 50)
    steps = args.steps or (500 if args.quick else 2000)
    started = time.perf_counter()

    data = make_repeats(args.seed, repeats)
    print(
        f"diabetes: {repeats} repeats of {data['x_train'].shape[1]} train / "
        f"{data['x_test'].shape[1]} test patients, "
        f"{int(data['outlier'][0].sum())} corrupted training targets each"
    )
    scale, offset = data["y_std"][:, None], data["y_mean"][:, None]
    truth = data["y_test"] * scale + offset  # progression points

    errors = {}  # label -> [repeats, n_test] test errors in progression points
    for label, loss, clean in RUNS:
        targets = data["y_train"] if clean else data["y_corrupted"]
        params = train(loss, data["x_train"], targets, steps, label)
        prediction = np.asarray(predict(params, jnp.asarray(data["x_test"]))) * scale + offset
        errors[label] = prediction - truth

    rmse = {k: np.sqrt(np.mean(e**2, axis=1)) for k, e in errors.items()}
    mae = {k: np.mean(np.abs(e), axis=1) for k, e in errors.items()}
    bias = {k: np.mean(e, axis=1) for k, e in errors.items()}
    mse_rmse = rmse["MSE"]

    def mean_std(values: np.ndarray) -> str:
        return f"{values.mean():.1f} ± {values.std():.1f}"

    rows = []
    for label, _, clean in RUNS:
        beats = "—" if label == "MSE" else f"{int(np.sum(rmse[label] < mse_rmse))}/{repeats}"
        rows.append(
            [
                label,
                "clean" if clean else "10% corrupted",
                mean_std(rmse[label]),
                mean_std(mae[label]),
                mean_std(bias[label]),
                beats,
            ]
        )
    table = markdown_table(
        [
            "loss",
            "training targets",
            "test RMSE",
            "test MAE",
            "test bias (mean error)",
            "repeats with lower RMSE than MSE",
        ],
        rows,
    )
    notes = (
        f"Clean test targets, in disease-progression points (the target's standard deviation is "
        f"about {data['y_std'].mean():.0f}); mean ± std over {repeats} repeats (split and "
        f"outlier draw), seeds {args.seed}..{args.seed + repeats - 1}; {steps} full-batch Adam "
        "steps per fit."
    )
    report(
        args.out,
        "robust_regression",
        "Linear regression on diabetes with 10% of the training targets corrupted "
        f"(+{OUTLIER_SHIFT[0]:g} to +{OUTLIER_SHIFT[1]:g} std): clean-test error per loss",
        table,
        started,
        notes,
    )

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    residual = jnp.linspace(-4.0, 4.0, 401)
    zero = jnp.zeros_like(residual)
    for label, loss, _ in RUNS[1:]:
        axes[0].plot(residual, loss(residual, zero, reduction="none"), label=label)
    axes[0].set(
        ylim=(0, 6),
        xlabel="residual (prediction − target), standard deviations",
        ylabel="per-example loss",
        title="The losses: quadratic vs linear tails",
    )
    axes[0].legend()

    labels = [label for label, _, _ in RUNS]
    colors = ["0.6", "C0", "C1", "C2", "C3"]
    means = [rmse[k].mean() for k in labels]
    stds = [rmse[k].std() for k in labels]
    short = ["MSE\n(clean)", "MSE", "MAE", "Huber", "log-cosh"]
    axes[1].bar(short, means, yerr=stds, color=colors, capsize=4)
    axes[1].axhline(means[0], color="0.4", linestyle="--", linewidth=1, label="MSE on clean data")
    axes[1].set(
        xlabel="loss (gray: clean training targets; colors: 10% corrupted)",
        ylabel="clean-test RMSE (progression points)",
        ylim=(0, max(m + s for m, s in zip(means, stds, strict=True)) * 1.15),
        title=f"Test RMSE, mean ± std over {repeats} repeats",
    )
    axes[1].legend(loc="lower right")

    bins = np.linspace(-250, 250, 41)
    histograms = [
        (labels[0], "0.5", "MSE, clean targets"),
        ("MSE", "C0", "MSE, corrupted targets"),
        (labels[3], "C2", "Huber, corrupted targets"),
    ]
    for label, color, legend in histograms:
        values = errors[label].ravel()
        axes[2].hist(values, bins=bins, histtype="step", linewidth=2, color=color, label=legend)
    axes[2].axvline(0, color="k", linewidth=0.8)
    axes[2].set(
        xlabel="test error (prediction − truth), progression points",
        ylabel=f"test patients (all {repeats} repeats)",
        title="Outliers shift the MSE fit upward",
    )
    axes[2].legend(loc="upper left", fontsize=8)
    save_figure(fig, args.out, "robust_regression")

    huber_label = labels[3]
    if not rmse[huber_label].mean() < mse_rmse.mean():
        raise SystemExit(
            f"Huber's mean clean-test RMSE {rmse[huber_label].mean():.1f} does not beat MSE's "
            f"{mse_rmse.mean():.1f} on corrupted targets"
        )


if __name__ == "__main__":
    main()
