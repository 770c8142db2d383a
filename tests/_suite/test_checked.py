"""``jaxloss.checked``: value errors raised with checkify, naming the argument."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxloss
from tests._suite import compiled
from tests._suite.compiled import BATCH, probe
from tests._suite.registry import DEVICE_AND_CHECK_NAMES, REGISTRY

Error = checkify.JaxRuntimeError


@pytest.mark.parametrize("name", DEVICE_AND_CHECK_NAMES)
def test_valid_inputs_pass_and_give_the_unchecked_value(name):
    args = [np.asarray(a) for a in REGISTRY[name].make_inputs(np.random.default_rng(0), BATCH)]
    np.testing.assert_allclose(
        compiled.checked(name)(*args), probe(name, args)["mean"], rtol=1e-5, atol=1e-6
    )


def test_unchecked_losses_trace_no_check():
    # Outside checked mode the checks cost nothing: not even an operation in the jaxpr.
    jaxpr = jax.make_jaxpr(jaxloss.cross_entropy)(jnp.zeros((2, 3)), jnp.array([0, 1]))
    assert "check" not in str(jaxpr)


def _logits():
    return jnp.zeros((3, 4))


def test_nan_or_inf_inputs_name_the_argument():
    with pytest.raises(Error, match="`predictions` holds NaN or inf"):
        jaxloss.checked(jaxloss.mse)(jnp.array([1.0, jnp.nan]), jnp.zeros(2))
    with pytest.raises(Error, match="`targets` holds NaN or inf"):
        jaxloss.checked(jaxloss.huber)(jnp.zeros(2), jnp.array([jnp.inf, 0.0]))
    with pytest.raises(Error, match="`logits` holds NaN"):
        jaxloss.checked(jaxloss.cross_entropy)(_logits().at[1, 2].set(jnp.nan), jnp.zeros(3, int))
    with pytest.raises(Error, match="`embeddings` holds NaN or inf"):
        embeddings = jnp.ones((2, 3)).at[0, 0].set(jnp.inf)
        jaxloss.checked(jaxloss.arcface)(embeddings, jnp.ones((4, 3)), jnp.array([0, 1]))


def test_minus_inf_logits_are_allowed():
    # -inf removes a class from the softmax: a legitimate input, also when checked.
    logits = _logits().at[:, 3].set(-jnp.inf)
    labels = jnp.array([0, 1, 2])
    expected = jaxloss.cross_entropy(logits, labels)
    np.testing.assert_allclose(jaxloss.checked(jaxloss.cross_entropy)(logits, labels), expected)
    assert np.isclose(float(expected), np.log(3))


def test_labels_out_of_range_unless_ignored_or_masked():
    ce = jaxloss.checked(jaxloss.cross_entropy)
    with pytest.raises(Error, match=r"`labels` must be class ids in \[0, num_classes\)"):
        ce(_logits(), jnp.array([0, 4, 1]))
    with pytest.raises(Error, match="or ignore_index -100"):
        ce(_logits(), jnp.array([0, -1, 1]), ignore_index=-100)
    np.testing.assert_allclose(
        ce(_logits(), jnp.array([0, -100, 1]), ignore_index=-100), np.log(4), rtol=1e-6
    )
    np.testing.assert_allclose(
        ce(_logits(), jnp.array([0, 7, 1]), where=jnp.array([True, False, True])),
        np.log(4),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "loss", [jaxloss.arcface, jaxloss.cosface, jaxloss.linear_cross_entropy, jaxloss.center_loss]
)
def test_class_ids_of_heads_and_center_loss(loss):
    x, w = jnp.ones((2, 3)), jnp.ones((4, 3))
    args = (x, w, jnp.array([1, 4]))
    with pytest.raises(Error, match="`labels` must be class ids"):
        jaxloss.checked(loss)(*args)


def test_center_update_and_tokens_are_checked():
    with pytest.raises(Error, match="`labels`"):
        jaxloss.checked(jaxloss.center_update)(
            jnp.ones((4, 3)), jnp.ones((2, 3)), jnp.array([0, 9])
        )
    with pytest.raises(Error, match="`tokens`"):
        jaxloss.checked(jaxloss.sequence_logprobs)(jnp.zeros((1, 3, 5)), jnp.array([[0, 5, 1]]))


def test_probabilities_outside_0_1():
    with pytest.raises(Error, match=r"`probs` must hold probabilities in \[0, 1\]"):
        jaxloss.checked(jaxloss.binary_cross_entropy)(jnp.array([0.5, 1.2]), jnp.ones(2))
    with pytest.raises(Error, match="`targets` must hold probabilities"):
        jaxloss.checked(jaxloss.binary_cross_entropy_with_logits)(
            jnp.zeros(2), jnp.array([0.0, -1.0])
        )
    with pytest.raises(Error, match="`labels` must hold probabilities"):
        jaxloss.checked(jaxloss.cross_entropy)(_logits(), jnp.full((3, 4), 0.5).at[0, 0].set(-0.5))
    with pytest.raises(Error, match="`probs` must hold probabilities"):
        jaxloss.checked(jaxloss.dice)(jnp.full((1, 4, 2), 1.5), jnp.zeros((1, 4), int))
    with pytest.raises(Error, match="`targets` must hold probabilities"):
        jaxloss.checked(jaxloss.kl_div)(jnp.zeros(3), jnp.array([0.5, 0.7, -0.2]))


def test_lengths_negative_or_too_long():
    logits, labels = jnp.zeros((2, 5, 4)), jnp.ones((2, 3), int)
    ctc = jaxloss.checked(jaxloss.ctc)
    with pytest.raises(Error, match=r"`label_lengths` must lie in \[0, 3\]"):
        ctc(logits, labels, label_lengths=jnp.array([2, 4]))
    with pytest.raises(Error, match=r"`logit_lengths` must lie in \[0, 5\]"):
        ctc(logits, labels, logit_lengths=jnp.array([-1, 5]))
    with pytest.raises(Error, match=r"`x_lengths` must lie in \[0, 6\]"):
        jaxloss.checked(jaxloss.chamfer)(
            jnp.zeros((2, 6, 3)), jnp.zeros((2, 4, 3)), x_lengths=jnp.array([7, 1])
        )


@pytest.mark.parametrize(
    "fn, args, size",
    [
        (jaxloss.ctc, (np.zeros((2, 5, 4), np.float32), np.ones((2, 3), np.int32)), 5),
        (jaxloss.rnnt, (np.zeros((2, 5, 4, 4), np.float32), np.ones((2, 3), np.int32)), 5),
        (
            jaxloss.chamfer,
            (np.zeros((2, 6, 3), np.float32), np.zeros((2, 4, 3), np.float32)),
            6,
        ),
    ],
    ids=["ctc", "rnnt", "chamfer"],
)
def test_concrete_lengths_outside_their_axis_raise_without_checked_mode(fn, args, size):
    # torch raises on these; unchecked, a traced length is clipped, but a concrete one (an
    # eager call, a NumPy array closed over) is read at the call. 0 and the full size pass.
    keyword = "x_lengths" if fn is jaxloss.chamfer else "logit_lengths"
    fn(*args, **{keyword: np.array([0, size])})
    for bad in (size + 1, -1):
        with pytest.raises(ValueError, match=rf"`{keyword}` must lie in \[0, {size}\], got {bad}"):
            fn(*args, **{keyword: np.array([1, bad])})
    if fn is not jaxloss.chamfer:
        with pytest.raises(ValueError, match=r"`label_lengths` must lie in \[0, 3\], got 4"):
            fn(*args, label_lengths=jnp.array([4, 1]))


def test_ctc_labels_are_classes_other_than_blank_within_their_length():
    logits = jnp.zeros((2, 6, 4))
    ctc = jaxloss.checked(jaxloss.ctc)
    with pytest.raises(Error, match="other than blank=0"):
        ctc(logits, jnp.array([[1, 0, 2], [1, 2, 3]]))
    # past label_lengths the padding may be anything
    value = ctc(logits, jnp.array([[1, -1, 99], [1, 2, 3]]), label_lengths=jnp.array([1, 3]))
    assert np.isfinite(float(value))


def test_hyperparameters_may_be_traced_and_options_static():
    arc = jaxloss.checked(jaxloss.arcface)
    x, w, y = jnp.ones((2, 3)), jnp.eye(4, 3), jnp.array([0, 1])
    for margin in (0.1, 0.3):
        np.testing.assert_allclose(
            arc(x, w, y, margin=jnp.float32(margin), reduction="sum", chunk_size=2),
            jaxloss.arcface(x, w, y, margin=margin, reduction="sum"),
            rtol=1e-6,
        )


def test_inside_a_jitted_step_it_reports_through_checkify():
    ce = jaxloss.checked(jaxloss.cross_entropy)

    @jax.jit
    def step(logits, labels):
        return ce(logits, labels) * 2

    checked_step = checkify.checkify(step)
    error, value = checked_step(_logits(), jnp.array([0, 1, 2]))
    error.throw()  # nothing wrong
    np.testing.assert_allclose(value, 2 * np.log(4), rtol=1e-6)
    error, _ = checked_step(_logits(), jnp.array([0, 1, 9]))
    with pytest.raises(Error, match="`labels`"):
        error.throw()


def test_under_vmap():
    batched = jax.vmap(jaxloss.checked(jaxloss.mse))
    with pytest.raises(Error, match="`predictions`"):
        batched(jnp.array([[1.0], [jnp.nan]]), jnp.zeros((2, 1)))


def test_a_nan_critic_gradient_is_reported_by_gradient_penalty():
    # sqrt has a NaN gradient at negative inputs: every interpolate of -1 and -1 is -1.
    def critic(x):
        return jnp.sum(jnp.sqrt(x), axis=-1)

    key = jax.random.key(0)

    def penalty(real, fake, where=None):
        return jaxloss.gradient_penalty(critic, real, fake, key, where=where)

    negative, positive = -jnp.ones((3, 2)), jnp.ones((3, 2))
    assert np.isnan(float(penalty(negative, negative)))
    with pytest.raises(Error, match="gradient of `critic`"):
        jaxloss.checked(penalty)(negative, negative)
    # A masked row is zeroed first; its critic gradient (inf at 0) is not the user's error.
    where = jnp.array([True, True, False])
    value = jaxloss.checked(penalty)(positive, positive.at[2].set(-1.0), where=where)
    assert np.isfinite(float(value))


def test_numpy_integers_and_booleans_are_static_options_as_in_the_loss():
    # chunk_size, p and easy_margin as NumPy scalars: what the unchecked loss accepts.
    rng = np.random.default_rng(5)
    x, w = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(5, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 4, 0])
    options = {"chunk_size": np.int64(2), "easy_margin": np.True_, "scale": 4.0}
    np.testing.assert_allclose(
        jaxloss.checked(jaxloss.arcface)(x, w, y, **options),
        jaxloss.arcface(x, w, y, **options),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        jaxloss.checked(jaxloss.multi_margin)(x, y % 4, p=np.int64(2)),
        jaxloss.multi_margin(x, y % 4, p=2),
        rtol=1e-6,
    )


def test_a_flax_module_is_read_at_every_call_and_its_state_written_back():
    # The module's parameters and statistics go in at each call (a changed parameter is
    # seen, not a constant of the first compilation), its updated statistics come back,
    # and a call whose checks fail leaves them as they were.
    from flax import nnx

    from jaxloss import nn

    rng = np.random.default_rng(6)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 4, 0])
    head = nn.MarginSoftmaxHead(4, 5, rngs=nnx.Rngs(0))
    checked_head = jaxloss.checked(head)
    np.testing.assert_allclose(checked_head(x, y), head(x, y), rtol=1e-6)
    head.centers[...] = jnp.eye(5, 4)
    np.testing.assert_allclose(checked_head(x, y), head(x, y), rtol=1e-6)

    head, twin = (nn.CurricularFaceHead(4, 5, momentum=0.5, rngs=nnx.Rngs(1)) for _ in range(2))
    checked_head = jaxloss.checked(head)
    for _ in range(2):
        np.testing.assert_allclose(checked_head(x, y), twin(x, y), rtol=1e-6)
        np.testing.assert_allclose(head.t[...], twin.t[...], rtol=1e-6)
    assert float(head.t[...]) != 0.0
    t = float(head.t[...])
    with pytest.raises(Error, match="`labels` must be class ids"):
        checked_head(x, y + 1)
    assert float(head.t[...]) == t

    centers = nn.CenterLoss(4, 5, alpha=0.5)
    before = np.array(centers.centers[...])
    jaxloss.checked(centers)(x, y)
    assert not np.allclose(centers.centers[...], before)
