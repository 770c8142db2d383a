"""Every public loss, with inputs to try it on and its float64 reference.

``tests/test_common.py`` runs the whole common suite on every entry, and fails when a name of
``jaxloss.__all__`` is neither here, an alias, nor listed as not a loss. Adding a loss means
adding one ``Case`` here (and its reference to ``_reference.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from tests import _reference as ref


@dataclasses.dataclass(frozen=True)
class Case:
    """How the common suite exercises one loss.

    Attributes:
      fn: the public function.
      make_inputs: ``(rng, batch) -> tuple`` of positional NumPy inputs.
      reference: float64 per-example (``reduction="none"``) values from those inputs.
      kwargs: options passed to both ``fn`` and ``reference``.
      differentiable: positions of the inputs to differentiate.
      hyperparameters: a traced hyperparameter and a second value for it, for the
        no-retrace test (empty if the loss has none).
      reference_mean: ``(none_values, *inputs) -> expected "mean"``; default the plain
        mean (CTC divides each loss by its label length first, as torch).
      grad_modes: the autodiff modes ``check_grads`` verifies; a hand-written
        ``custom_vjp`` kernel supports reverse mode only.
      batched: positions of the inputs whose leading axis is the batch (split when entries
        are dropped); None: all of them. Class centers, for one, are not.
      scalar: ``fn`` returns a scalar and takes no ``reduction`` (``reference`` returns
        that scalar, ``where`` is ``[batch]``); the suite's "mean" is its value.
      rows_independent: each row's value depends on that row's inputs alone. False for
        ``gradient_penalty``, which draws its interpolation coefficients per batch
        position, so dropping rows redraws them (its masking is tested in its own module).
      invalid: hyperparameter values outside the option's domain, each of which must raise
        a ValueError naming the option when given as a Python number (``{"delta": 0.0}``).
      padding: ``(*inputs) -> {position: mask}``, the entries of those inputs that the
        loss must not read besides rows masked by ``where`` (ignored labels, entries past a
        length): the hostile-padding property fills them with NaN, ±inf and 1e30.
    """

    fn: Callable[..., Any]
    make_inputs: Callable[[np.random.Generator, int], tuple]
    reference: Callable[..., np.ndarray]
    kwargs: dict = dataclasses.field(default_factory=dict)
    differentiable: tuple[int, ...] = (0,)
    hyperparameters: dict = dataclasses.field(default_factory=dict)
    reference_mean: Callable[..., float] = lambda none, *inputs: none.mean()
    grad_modes: tuple[str, ...] = ("fwd", "rev")
    batched: tuple[int, ...] | None = None
    scalar: bool = False
    rows_independent: bool = True
    invalid: dict = dataclasses.field(default_factory=dict)
    padding: Callable[..., dict[int, np.ndarray]] | None = None

    @property
    def reductions(self) -> tuple[str, ...]:
        """The reductions ``fn`` accepts; a scalar loss (``batch_triplet``) has none."""
        return ("mean",) if self.scalar else ("mean", "sum", "none")


FEATURES = 3
NUM_CLASSES = 5


def _pair(rng: np.random.Generator, batch: int) -> tuple:
    shape = (batch, FEATURES)
    return rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)


def _logits_labels(rng: np.random.Generator, batch: int) -> tuple:
    logits = 2 * rng.normal(size=(batch, NUM_CLASSES))
    return logits.astype(np.float32), rng.integers(0, NUM_CLASSES, size=batch).astype(np.int32)


def _log_probs_labels(rng: np.random.Generator, batch: int) -> tuple:
    logits, labels = _logits_labels(rng, batch)
    return ref.log_softmax(logits).astype(np.float32), labels


def _probs_targets(rng: np.random.Generator, batch: int) -> tuple:
    shape = (batch, FEATURES)
    probs = rng.uniform(0.05, 0.95, size=shape)
    return probs.astype(np.float32), rng.uniform(size=shape).astype(np.float32)


def _logits_binary_targets(rng: np.random.Generator, batch: int) -> tuple:
    shape = (batch, FEATURES)
    logits = 2 * rng.normal(size=shape)
    return logits.astype(np.float32), (rng.uniform(size=shape) < 0.3).astype(np.float32)


def _log_input_target(rng: np.random.Generator, batch: int) -> tuple:
    log_input, _ = _log_probs_labels(rng, batch)
    target = np.exp(ref.log_softmax(rng.normal(size=(batch, NUM_CLASSES))))
    return log_input, target.astype(np.float32)


CTC_FRAMES = 12
CTC_LABELS = 4


def _ctc_inputs(rng: np.random.Generator, batch: int) -> tuple:
    logits = 2 * rng.normal(size=(batch, CTC_FRAMES, NUM_CLASSES))
    labels = rng.integers(1, NUM_CLASSES, size=(batch, CTC_LABELS))
    return logits.astype(np.float32), labels.astype(np.int32)


EMBEDDING_DIM = 4


def _embeddings_centers_labels(rng: np.random.Generator, batch: int) -> tuple:
    embeddings = rng.normal(size=(batch, EMBEDDING_DIM)).astype(np.float32)
    centers = rng.normal(size=(NUM_CLASSES + 2, EMBEDDING_DIM)).astype(np.float32)
    return embeddings, centers, rng.integers(0, NUM_CLASSES + 2, size=batch).astype(np.int32)


def _features_labels_centers(rng: np.random.Generator, batch: int) -> tuple:
    features, centers, labels = _embeddings_centers_labels(rng, batch)
    return features, labels, centers


def _pairs(rng: np.random.Generator, batch: int) -> tuple:
    x1, x2 = (rng.normal(size=(batch, EMBEDDING_DIM)).astype(np.float32) for _ in range(2))
    return x1, x2, (rng.uniform(size=batch) < 0.5).astype(np.float32)


def _signed_pairs(rng: np.random.Generator, batch: int) -> tuple:
    x1, x2, similar = _pairs(rng, batch)
    return x1, x2, (2 * similar - 1).astype(np.int32)


def _scores(rng: np.random.Generator, batch: int) -> tuple:
    x1, x2 = rng.normal(size=batch).astype(np.float32), rng.normal(size=batch).astype(np.float32)
    return x1, x2, np.where(rng.uniform(size=batch) < 0.5, 1.0, -1.0).astype(np.float32)


def _triplets(rng: np.random.Generator, batch: int) -> tuple:
    return tuple(rng.normal(size=(batch, EMBEDDING_DIM)).astype(np.float32) for _ in range(3))


def _views(rng: np.random.Generator, batch: int) -> tuple:
    return _triplets(rng, batch)[:2]


def _labelled_batch(rng: np.random.Generator, batch: int) -> tuple:
    # Three identities, each twice in a batch of 6: every anchor has positives and negatives.
    labels = rng.permutation(np.arange(batch) % 3).astype(np.int32)
    return rng.normal(size=(batch, EMBEDDING_DIM)).astype(np.float32), labels


def _pair_case(fn, reference, make_inputs, differentiable, **kwargs) -> Case:
    hyperparameters = {"margin": kwargs["margin"] + 2.0} if "margin" in kwargs else {}
    if "temperature" in kwargs:
        hyperparameters = {"temperature": 0.5}
    return Case(
        fn,
        make_inputs,
        reference,
        kwargs=kwargs,
        differentiable=differentiable,
        hyperparameters=hyperparameters,
    )


def _batch_triplet_case(**kwargs) -> Case:
    return Case(
        jaxloss.batch_triplet,
        _labelled_batch,
        ref.batch_triplet,
        kwargs={"margin": 4.0 if kwargs.get("squared") else 1.5, **kwargs},
        hyperparameters={"margin": 0.5},
        reference_mean=lambda value, *inputs: value,
        scalar=True,
    )


def _margin_case(fn, reference, **kwargs) -> Case:
    return Case(
        fn,
        _embeddings_centers_labels,
        reference,
        kwargs=kwargs,
        differentiable=(0, 1),
        hyperparameters={"scale": 3.0} if "scale" in kwargs else {},
        batched=(0, 2),
    )


def _chunked(fn, reference, chunk_size, **kwargs) -> Case:
    """A chunked variant: ``chunk_size`` goes to ``fn`` only, and autodiff is reverse only."""

    def chunked_fn(*args, **options):
        return fn(*args, chunk_size=chunk_size, **options)

    return dataclasses.replace(_margin_case(chunked_fn, reference, **kwargs), grad_modes=("rev",))


IGNORE_INDEX = -100


def _with_ignored(make_inputs):
    """Inputs whose labels (last) are ``IGNORE_INDEX`` at rows 2, 8, ...: rows that count
    in the suites' masks, so ignoring and masking are each seen on their own."""

    def with_ignored(rng: np.random.Generator, batch: int) -> tuple:
        *scores, labels = make_inputs(rng, batch)
        labels = labels.copy()
        labels[2::6] = IGNORE_INDEX
        return (*scores, labels)

    return with_ignored


def _ignoring(reference):
    """The per-example reference with ignored labels giving 0."""

    def ignoring(scores, labels, ignore_index):
        ignored = np.asarray(labels) == ignore_index
        return np.where(ignored, 0.0, reference(scores, np.where(ignored, 0, labels)))

    return ignoring


def _ignored_rows(scores, labels) -> dict[int, np.ndarray]:
    ignored = np.asarray(labels) == IGNORE_INDEX
    return {0: np.broadcast_to(ignored[..., None], np.shape(scores))}


def _ignore_case(fn, make_inputs, reference) -> Case:
    return Case(
        fn,
        _with_ignored(make_inputs),
        _ignoring(reference),
        kwargs={"ignore_index": IGNORE_INDEX},
        reference_mean=lambda none, scores, labels: (
            none.sum() / max(1, np.sum(labels != IGNORE_INDEX))
        ),
        padding=_ignored_rows,
    )


def _ctc_padded_inputs(rng: np.random.Generator, batch: int) -> tuple:
    logits, labels = _ctc_inputs(rng, batch)
    # At least 8 of the 12 frames: enough for 4 labels even with repeats.
    logit_lengths = rng.integers(8, CTC_FRAMES + 1, size=batch).astype(np.int32)
    return (
        logits,
        labels,
        logit_lengths,
        rng.integers(1, CTC_LABELS + 1, size=batch).astype(np.int32),
    )


def _ctc_with_lengths(logits, labels, logit_lengths, label_lengths, **options):
    return jaxloss.ctc(
        logits, labels, logit_lengths=logit_lengths, label_lengths=label_lengths, **options
    )


def _ctc_padding(logits, labels, logit_lengths, label_lengths) -> dict[int, np.ndarray]:
    past = np.arange(np.shape(logits)[1])[None, :] >= np.asarray(logit_lengths)[:, None]
    return {0: np.broadcast_to(past[..., None], np.shape(logits))}


PIXELS = 6


def _probs_labels(rng: np.random.Generator, batch: int) -> tuple:
    probs = np.exp(ref.log_softmax(2 * rng.normal(size=(batch, PIXELS, NUM_CLASSES))))
    return probs.astype(np.float32), rng.integers(0, NUM_CLASSES, size=(batch, PIXELS)).astype(
        np.int32
    )


def _probs_soft_targets(rng: np.random.Generator, batch: int) -> tuple:
    probs, _ = _probs_labels(rng, batch)
    return probs, rng.uniform(size=probs.shape).astype(np.float32)


def _overlap_case(fn, reference, make_inputs, hyperparameters=None, **kwargs) -> Case:
    return Case(fn, make_inputs, reference, kwargs=kwargs, hyperparameters=hyperparameters or {})


POINTS_X, POINTS_Y, POINT_DIM = 7, 5, 3


def _clouds(rng: np.random.Generator, batch: int) -> tuple:
    x = rng.normal(size=(batch, POINTS_X, POINT_DIM)).astype(np.float32)
    return x, rng.normal(size=(batch, POINTS_Y, POINT_DIM)).astype(np.float32)


def _padded_clouds(rng: np.random.Generator, batch: int) -> tuple:
    x, y = _clouds(rng, batch)
    x_lengths = rng.integers(1, POINTS_X + 1, size=batch).astype(np.int32)
    return x, y, x_lengths, rng.integers(1, POINTS_Y + 1, size=batch).astype(np.int32)


def _with_lengths(fn):
    """``fn`` with the clouds' lengths as positional inputs, so the suite can drop rows."""

    def with_lengths(x, y, x_lengths, y_lengths, **options):
        return fn(x, y, x_lengths=x_lengths, y_lengths=y_lengths, **options)

    return with_lengths


def _points_past_lengths(x, y, x_lengths, y_lengths) -> dict[int, np.ndarray]:
    def past(points, lengths):
        beyond = np.arange(np.shape(points)[1])[None, :] >= np.asarray(lengths)[:, None]
        return np.broadcast_to(beyond[..., None], np.shape(points))

    return {0: past(x, x_lengths), 1: past(y, y_lengths)}


def _chamfer_case(make_inputs, chunk_size=None, **kwargs) -> Case:
    fn, reference, padding = jaxloss.chamfer, ref.chamfer, None
    if make_inputs is _padded_clouds:
        fn, reference = _with_lengths(fn), _with_lengths(reference)
        padding = _points_past_lengths

    def chamfer(*args, **options):
        return fn(*args, chunk_size=chunk_size, **options)

    # custom_vjp: reverse mode only.
    return Case(
        chamfer,
        make_inputs,
        reference,
        kwargs=kwargs,
        differentiable=(0, 1),
        grad_modes=("rev",),
        padding=padding,
    )


LAYER_SHAPES = ((4, 3, 2), (2, 2, 3))


def _feature_maps(rng: np.random.Generator, batch: int) -> tuple:
    """Two layers of features, then two of targets: ``(f1, f2, t1, t2)``."""
    maps = [rng.normal(size=(batch, *shape)) for shape in LAYER_SHAPES * 2]
    return tuple(m.astype(np.float32) for m in maps)


def _layer_lists(fn):
    """``fn`` over two layers passed as four positional arrays."""

    def on_layers(f1, f2, t1, t2, **options):
        return fn([f1, f2], [t1, t2], **options)

    return on_layers


def _layers_case(fn, reference, **kwargs) -> Case:
    return Case(
        _layer_lists(fn),
        _feature_maps,
        _layer_lists(reference),
        kwargs=kwargs,
        differentiable=(0, 1, 2, 3),
    )


def _scores_pair(rng: np.random.Generator, batch: int) -> tuple:
    return tuple((2 * rng.normal(size=batch)).astype(np.float32) for _ in range(2))


def _scores_one(rng: np.random.Generator, batch: int) -> tuple:
    return _scores_pair(rng, batch)[:1]


def _score_case(fn, reference, make_inputs, **kwargs) -> Case:
    differentiable = tuple(range(len(make_inputs(np.random.default_rng(0), 1))))
    return Case(fn, make_inputs, reference, kwargs=kwargs, differentiable=differentiable)


# A fixed nonlinear critic for gradient_penalty: D(x) = Σ_k v_k tanh((x W)_k).
_CRITIC_W = np.random.default_rng(123).normal(size=(FEATURES, 4)).astype(np.float32)
_CRITIC_V = np.random.default_rng(321).normal(size=4).astype(np.float32)
PENALTY_KEY = 7


def _critic(x):
    return jnp.tanh(x @ _CRITIC_W.astype(x.dtype)) @ _CRITIC_V.astype(x.dtype)


def _gradient_penalty(real, fake, **options):
    return jaxloss.gradient_penalty(_critic, real, fake, jax.random.key(PENALTY_KEY), **options)


def _gradient_penalty_reference(real, fake, target=1.0):
    epsilon = np.asarray(jax.random.uniform(jax.random.key(PENALTY_KEY), (len(real), 1)))
    return ref.gradient_penalty(_CRITIC_W, _CRITIC_V, real, fake, epsilon, target)


def _vae_outputs(rng: np.random.Generator, batch: int) -> tuple:
    reconstruction = rng.uniform(1, 3, size=batch).astype(np.float32)
    mean = rng.normal(size=(batch, EMBEDDING_DIM)).astype(np.float32)
    return reconstruction, mean, (0.5 * rng.normal(size=(batch, EMBEDDING_DIM))).astype(np.float32)


def _sequence_logps(rng: np.random.Generator, batch: int, count: int) -> tuple:
    return tuple((-20 + 5 * rng.normal(size=batch)).astype(np.float32) for _ in range(count))


def _dpo_case(beta, other_beta=0.3, **kwargs) -> Case:
    return Case(
        jaxloss.dpo,
        lambda rng, batch: _sequence_logps(rng, batch, 4),
        ref.dpo,
        kwargs={"beta": beta, **kwargs},
        differentiable=(0, 1),
        hyperparameters={"beta": other_beta},
    )


def _average_logps(rng: np.random.Generator, batch: int) -> tuple:
    return tuple(rng.uniform(-3, -0.05, size=batch).astype(np.float32) for _ in range(2))


def _kto_inputs(rng: np.random.Generator, batch: int) -> tuple:
    policy, ref_logps = _sequence_logps(rng, batch, 2)
    return policy, ref_logps, np.arange(batch) % 2 == 0


TOKENS = 5


def _token_logps(rng: np.random.Generator, batch: int) -> tuple:
    shape = (batch, TOKENS)
    logprobs = rng.uniform(-4, -0.1, size=shape)
    old = logprobs + 0.3 * rng.normal(size=shape)
    advantages = rng.normal(size=shape)
    return logprobs.astype(np.float32), old.astype(np.float32), advantages.astype(np.float32)


def _token_logp_pairs(rng: np.random.Generator, batch: int) -> tuple:
    return _token_logps(rng, batch)[:2]


def public_name(name: str) -> str:
    """The exported function a registry entry tests: ``"arcface[classes]"`` -> ``"arcface"``."""
    return name.split("[")[0]


REGISTRY: dict[str, Case] = {
    "mse": Case(jaxloss.mse, _pair, ref.mse, differentiable=(0, 1)),
    "mae": Case(jaxloss.mae, _pair, ref.mae, differentiable=(0, 1)),
    "huber": Case(
        jaxloss.huber,
        _pair,
        ref.huber,
        kwargs={"delta": 0.7},
        differentiable=(0, 1),
        hyperparameters={"delta": 1.3},
        invalid={"delta": 0.0},
    ),
    "smooth_l1": Case(
        jaxloss.smooth_l1,
        _pair,
        ref.smooth_l1,
        kwargs={"beta": 0.6},
        differentiable=(0, 1),
        hyperparameters={"beta": 0.0},
        invalid={"beta": -0.5},
    ),
    "log_cosh": Case(jaxloss.log_cosh, _pair, ref.log_cosh, differentiable=(0, 1)),
    "cross_entropy": Case(
        jaxloss.cross_entropy,
        _logits_labels,
        ref.cross_entropy,
        invalid={"label_smoothing": 1.5},
    ),
    "cross_entropy[ignore_index]": _ignore_case(
        jaxloss.cross_entropy, _logits_labels, ref.cross_entropy
    ),
    "nll": Case(jaxloss.nll, _log_probs_labels, ref.nll),
    "nll[ignore_index]": _ignore_case(jaxloss.nll, _log_probs_labels, ref.nll),
    "binary_cross_entropy": Case(
        jaxloss.binary_cross_entropy,
        _probs_targets,
        ref.binary_cross_entropy,
        differentiable=(0, 1),
    ),
    "binary_cross_entropy_with_logits": Case(
        jaxloss.binary_cross_entropy_with_logits,
        _logits_binary_targets,
        ref.binary_cross_entropy_with_logits,
        kwargs={"pos_weight": 2.5},
        differentiable=(0, 1),
        hyperparameters={"pos_weight": 0.5},
    ),
    "sigmoid_focal": Case(
        jaxloss.sigmoid_focal,
        _logits_binary_targets,
        ref.sigmoid_focal,
        kwargs={"alpha": 0.3, "gamma": 1.5},
        hyperparameters={"gamma": 2.5},
        invalid={"gamma": -1.0, "alpha": 1.5},
    ),
    "softmax_focal": Case(
        jaxloss.softmax_focal,
        _logits_labels,
        ref.softmax_focal,
        kwargs={"gamma": 1.5},
        hyperparameters={"gamma": 0.0},
        invalid={"gamma": -0.5},
    ),
    "kl_div": Case(jaxloss.kl_div, _log_input_target, ref.kl_div, differentiable=(0, 1)),
    "gaussian_kl": Case(jaxloss.gaussian_kl, _pair, ref.gaussian_kl, differentiable=(0, 1)),
    "norm_softmax": _margin_case(jaxloss.norm_softmax, ref.norm_softmax, scale=5.0),
    "cosface": _margin_case(jaxloss.cosface, ref.cosface, scale=5.0, margin=0.3),
    # A margin large enough that some targets fall in InsightFace's fallback region.
    "arcface": _margin_case(jaxloss.arcface, ref.arcface, scale=5.0, margin=1.2),
    "combined_margin": _margin_case(
        jaxloss.combined_margin, ref.combined_margin, scale=5.0, m1=1.1, m2=0.2, m3=0.1
    ),
    "sphereface": _margin_case(jaxloss.sphereface, ref.sphereface, margin=3, lam=0.5),
    "linear_cross_entropy": Case(
        jaxloss.linear_cross_entropy,
        _embeddings_centers_labels,
        ref.linear_cross_entropy,
        differentiable=(0, 1),
        batched=(0, 2),
    ),
    # The chunked kernels, under the name of the loss and the path: with 6 rows and 7
    # classes, chunk_size=3 takes the row-blocked kernel (gradients in the forward pass),
    # chunk_size=1 the class-blocked one (see jaxloss.margin.linear._rows_per_block).
    "linear_cross_entropy[rows]": _chunked(
        jaxloss.linear_cross_entropy, ref.linear_cross_entropy, chunk_size=3
    ),
    "linear_cross_entropy[classes]": _chunked(
        jaxloss.linear_cross_entropy, ref.linear_cross_entropy, chunk_size=1
    ),
    "arcface[classes]": _chunked(jaxloss.arcface, ref.arcface, chunk_size=3, scale=5.0, margin=1.2),
    "contrastive": _pair_case(jaxloss.contrastive, ref.contrastive, _pairs, (0, 1), margin=2.0),
    "triplet_margin": dataclasses.replace(
        _pair_case(jaxloss.triplet_margin, ref.triplet_margin, _triplets, (0, 1, 2), margin=1.0),
        invalid={"p": -1.0, "eps": -1e-3},
    ),
    "triplet_margin[p=1,swap]": _pair_case(
        jaxloss.triplet_margin,
        ref.triplet_margin,
        _triplets,
        (0, 1, 2),
        margin=1.0,
        p=1.0,
        swap=True,
    ),
    "triplet_margin[p=3]": _pair_case(
        jaxloss.triplet_margin, ref.triplet_margin, _triplets, (0, 1, 2), margin=1.0, p=3.0
    ),
    "triplet_margin[squared]": _pair_case(
        jaxloss.triplet_margin,
        ref.triplet_margin,
        _triplets,
        (0, 1, 2),
        margin=2.0,
        squared=True,
        swap=True,
    ),
    "ratio_loss": _pair_case(jaxloss.ratio_loss, ref.ratio_loss, _triplets, (0, 1, 2)),
    "margin_ranking": _pair_case(
        jaxloss.margin_ranking, ref.margin_ranking, _scores, (0, 1), margin=0.3
    ),
    "cosine_embedding": _pair_case(
        jaxloss.cosine_embedding, ref.cosine_embedding, _signed_pairs, (0, 1), margin=-0.2
    ),
    "nt_xent": dataclasses.replace(
        _pair_case(jaxloss.nt_xent, ref.nt_xent, _views, (0, 1), temperature=0.2),
        invalid={"temperature": 0.0},
    ),
    "batch_triplet[all]": _batch_triplet_case(mining="all"),
    "batch_triplet[hard]": _batch_triplet_case(mining="hard"),
    "batch_triplet[semihard,squared]": _batch_triplet_case(mining="semihard", squared=True),
    "center_loss": Case(
        jaxloss.center_loss,
        _features_labels_centers,
        ref.center_loss,
        differentiable=(0, 2),
        batched=(0, 1),
    ),
    "dice": dataclasses.replace(
        _overlap_case(
            jaxloss.dice,
            ref.dice,
            _probs_labels,
            {"smooth_nr": 0.5},
            smooth_nr=1e-3,
            smooth_dr=1e-2,
        ),
        invalid={"smooth_dr": -1.0},
    ),
    "dice[squared,soft,no_background]": _overlap_case(
        jaxloss.dice, ref.dice, _probs_soft_targets, squared=True, include_background=False
    ),
    "tversky": dataclasses.replace(
        _overlap_case(
            jaxloss.tversky, ref.tversky, _probs_labels, {"beta": 0.4}, alpha=0.3, beta=0.7
        ),
        invalid={"alpha": -0.1, "gamma": 0.0},
    ),
    "tversky[focal,soft]": _overlap_case(
        jaxloss.tversky, ref.tversky, _probs_soft_targets, {"gamma": 2.0}, gamma=0.75
    ),
    "chamfer": _chamfer_case(_clouds),
    "chamfer[plain,sum,chunked]": _chamfer_case(
        _clouds, chunk_size=3, squared=False, point_reduction="sum"
    ),
    "chamfer[lengths,single,chunked]": _chamfer_case(
        _padded_clouds, chunk_size=2, single_directional=True
    ),
    "chamfer[lengths]": _chamfer_case(_padded_clouds, squared=False),
    "style_loss": _layers_case(jaxloss.style_loss, ref.style_loss, weights=[1.0, 0.5]),
    "perceptual_loss": _layers_case(jaxloss.perceptual_loss, ref.perceptual_loss),
    "gan_discriminator": _score_case(
        jaxloss.gan_discriminator, ref.gan_discriminator, _scores_pair
    ),
    "gan_generator": _score_case(jaxloss.gan_generator, ref.gan_generator, _scores_one),
    "gan_generator[saturating]": _score_case(
        jaxloss.gan_generator, ref.gan_generator, _scores_one, saturating=True
    ),
    "wasserstein_critic": _score_case(
        jaxloss.wasserstein_critic, ref.wasserstein_critic, _scores_pair
    ),
    "wasserstein_generator": _score_case(
        jaxloss.wasserstein_generator, ref.wasserstein_generator, _scores_one
    ),
    "hinge_discriminator": _score_case(
        jaxloss.hinge_discriminator, ref.hinge_discriminator, _scores_pair
    ),
    "hinge_generator": _score_case(jaxloss.hinge_generator, ref.wasserstein_generator, _scores_one),
    "gradient_penalty": Case(
        _gradient_penalty,
        _pair,
        _gradient_penalty_reference,
        kwargs={"target": 1.0},
        differentiable=(0, 1),
        hyperparameters={"target": 0.5},
        rows_independent=False,
    ),
    "elbo_loss": Case(
        jaxloss.elbo_loss,
        _vae_outputs,
        ref.elbo_loss,
        kwargs={"beta": 2.0},
        differentiable=(0, 1, 2),
        hyperparameters={"beta": 0.5},
        invalid={"beta": -1.0, "free_bits": -0.5},
    ),
    "elbo_loss[free_bits]": Case(
        jaxloss.elbo_loss,
        _vae_outputs,
        ref.elbo_loss,
        kwargs={"free_bits": 0.45},
        differentiable=(0, 1, 2),
        hyperparameters={"free_bits": 0.2},
    ),
    "bradley_terry": Case(
        jaxloss.bradley_terry,
        _scores_pair,
        ref.bradley_terry,
        kwargs={"margin": 0.5},
        differentiable=(0, 1),
        hyperparameters={"margin": 1.5},
    ),
    "dpo": dataclasses.replace(
        _dpo_case(beta=0.3, label_smoothing=0.1, other_beta=0.05),
        invalid={"beta": 0.0, "label_smoothing": -0.1},
    ),
    "dpo[hinge]": _dpo_case(beta=0.1, loss_type="hinge"),
    "dpo[ipo]": _dpo_case(beta=0.1, loss_type="ipo"),
    "simpo": Case(
        jaxloss.simpo,
        _average_logps,
        ref.simpo,
        kwargs={"label_smoothing": 0.05},
        differentiable=(0, 1),
        hyperparameters={"gamma": 1.0},
    ),
    "orpo": Case(
        jaxloss.orpo,
        _average_logps,
        ref.orpo,
        kwargs={"beta": 0.5},
        differentiable=(0, 1),
        hyperparameters={"beta": 0.1},
    ),
    "kto": Case(
        jaxloss.kto,
        _kto_inputs,
        ref.kto,
        kwargs={"beta": 0.2, "reference_point": 0.3, "undesirable_weight": 1.3},
        differentiable=(0, 1),
        hyperparameters={"beta": 0.05},
        invalid={"beta": 0.0},
    ),
    "ppo_clip": Case(
        jaxloss.ppo_clip,
        _token_logps,
        ref.ppo_clip,
        kwargs={"epsilon": 0.2},
        differentiable=(0,),
        hyperparameters={"epsilon": 0.1},
        invalid={"epsilon": -0.1},
    ),
    "ppo_clip[dual_clip]": Case(
        jaxloss.ppo_clip,
        _token_logps,
        ref.ppo_clip,
        kwargs={"epsilon": 0.1, "dual_clip": 1.2},
        differentiable=(0,),
        hyperparameters={"dual_clip": 1.05},
    ),
    "kl_penalty[k1]": Case(
        jaxloss.kl_penalty, _token_logp_pairs, ref.kl_penalty, differentiable=(0, 1)
    ),
    "kl_penalty[k2]": Case(
        jaxloss.kl_penalty,
        _token_logp_pairs,
        ref.kl_penalty,
        kwargs={"estimator": "k2"},
        differentiable=(0, 1),
    ),
    "kl_penalty[k3]": Case(
        jaxloss.kl_penalty,
        _token_logp_pairs,
        ref.kl_penalty,
        kwargs={"estimator": "k3"},
        differentiable=(0, 1),
    ),
    "ctc": Case(
        jaxloss.ctc,
        _ctc_inputs,
        ref.ctc,
        reference_mean=lambda none, logits, labels: (none / labels.shape[1]).mean(),
        grad_modes=("rev",),
    ),
    "ctc[lengths]": Case(
        _ctc_with_lengths,
        _ctc_padded_inputs,
        ref.ctc,
        # torch's "mean": each loss over its label length, then the mean.
        reference_mean=lambda none, logits, labels, logit_lengths, label_lengths: (
            none / np.maximum(label_lengths, 1)
        ).mean(),
        grad_modes=("rev",),
        padding=_ctc_padding,
    ),
}

# Public names that are the same function as a registered one.
ALIASES: dict[str, str] = {"l1": "mae", "am_softmax": "cosface"}

# Public names that are not losses (decoders, update rules, helpers), each with the test
# module that covers it.
NOT_LOSSES: dict[str, str] = {
    "checked": "tests/test_checked.py",
    "ctc_greedy_decode": "tests/test_ctc.py",
    "center_update": "tests/test_margin.py",
    "gram_matrix": "tests/test_dense.py",
    "grpo_advantages": "tests/test_preference.py",
    "token_logprobs": "tests/test_preference.py",
    "sequence_logprobs": "tests/test_preference.py",
}


def call(name: str, *args, **options):
    """Calls the entry's function with its kwargs; a scalar loss takes no ``reduction``."""
    case = REGISTRY[name]
    if case.scalar:  # no reduction argument: its value is the suite's "mean"
        assert options.pop("reduction", "mean") == "mean"
    return case.fn(*args, **{**case.kwargs, **options})


def batched_positions(name: str, args: tuple) -> tuple[int, ...]:
    """The positions of the inputs whose leading axis is the batch."""
    batched = REGISTRY[name].batched
    return tuple(range(len(args))) if batched is None else batched


def row_mask(name: str, args: tuple, keep: np.ndarray) -> np.ndarray:
    """``keep [batch]`` broadcast to the entry's ``"none"`` shape: a ``where`` of whole rows."""
    if REGISTRY[name].scalar:
        return keep
    shape = np.shape(call(name, *args, reduction="none"))
    return np.broadcast_to(keep.reshape((-1,) + (1,) * (len(shape) - 1)), shape)
