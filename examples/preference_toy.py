"""A toy RLHF pipeline: a Bradley–Terry reward model, then DPO, on simulated preferences.

What it shows: the two preference losses of a chat-model alignment pipeline, on a problem
small enough to know the right answer. People compare two answers to the same prompt and
say which is better; ``jaxloss.bradley_terry`` turns those comparisons into a reward model
(stage 1, as in Ouyang et al. 2022), and ``jaxloss.dpo`` trains the policy directly on the
same comparisons, with no reward model and no sampling during training (stage 2, Rafailov
et al. 2023). Because the data are simulated, the script can score both stages against the
hidden reward that generated them.

Data (synthetic, honest): 16 prompts; an answer is 8 tokens from a 10-word vocabulary. A
hidden "true" reward, fixed by the seed, scores an answer as the sum of a per-prompt score
of each token and a score of each pair of adjacent tokens (a prompt wants certain words,
and some words read well after others). A reference policy (a tiny autoregressive model:
the prompt, the previous token and the position, embedded, through an MLP; randomly
initialized, standing in for the supervised model) answers each prompt twice; a simulated
annotator prefers answer a over b with the Bradley–Terry probability
``sigmoid(r_a − r_b)``, so close calls are often labelled "wrong". No model can expect to
agree with those noisy labels more often than the true reward does: that agreement is the
ceiling printed next to the reward model's.

Stage 1 fits a reward model with ``jaxloss.bradley_terry``: a score for each token given
the prompt and the previous token (embeddings through an MLP), summed over the answer, the
way a reward model reads an answer in context. It reports the held-out loss and how often
the model ranks a held-out pair as the annotator did, and as the true reward does.

Stage 2 starts a policy from the reference and minimizes ``jaxloss.dpo`` (β = 0.1) on the
same training pairs, with answer log-probabilities from ``jaxloss.sequence_logprobs``. It
samples answers from the DPO policy and from the reference for the same prompts and reports
the win rate under the true reward (and under the learned reward model), the mean true
reward, and the KL divergence from the reference (the mean of ``log π − log π_ref`` over the
policy's own answers). It also ranks the held-out pairs by DPO's implicit reward
``β log(π/π_ref)``. For comparison, the policy that DPO's objective is minimized by,
``π* ∝ π_ref · exp(r / β)`` (Rafailov et al. 2023, eq. 4), is computed exactly from the true
reward (a backward recursion over positions: the reward is a sum over adjacent tokens and
the reference is Markov), for β = 0.1 and for a range of β: the reward–KL frontier that
DPO's path through training is drawn against.

Run it from the repository root::

    .venv/bin/python examples/preference_toy.py            # full run
    .venv/bin/python examples/preference_toy.py --quick    # fewer pairs and steps
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from _common import batches, markdown_table, mlp_apply, mlp_init, parse_args, report, save_figure
from tqdm.auto import tqdm

import jaxloss

NUM_PROMPTS = 16
LENGTH = 8  # tokens per answer
VOCAB = 10
BOS = VOCAB  # the "previous token" of the first position
EMBED = 16
BETA = 0.1
BATCH = 256
EVAL_SAMPLES = 4096  # answers per policy for the win rate and the KL
FRONTIER = np.geomspace(0.03, 30.0, 25)  # β of the exact optima drawn as the reward–KL curve

Params = dict


def true_reward_tables(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The hidden reward: per-prompt token scores ``[prompts, vocab]``, bigram scores."""
    k_token, k_pair = jax.random.split(key)
    token_scores = 0.5 * jax.random.normal(k_token, (NUM_PROMPTS, VOCAB))
    pair_scores = 0.3 * jax.random.normal(k_pair, (VOCAB, VOCAB))
    return token_scores, pair_scores


def true_reward(tables, prompts: jax.Array, answers: jax.Array) -> jax.Array:
    """``[n]`` true rewards of answers ``[n, LENGTH]`` to prompts ``[n]``."""
    token_scores, pair_scores = tables
    per_token = jnp.take_along_axis(token_scores[prompts], answers, axis=1).sum(axis=1)
    per_pair = pair_scores[answers[:, :-1], answers[:, 1:]].sum(axis=1)
    return per_token + per_pair


def policy_init(key: jax.Array) -> Params:
    """Embeddings of prompts, previous tokens and positions, and an MLP to next-token logits."""
    keys = jax.random.split(key, 4)
    return {
        "prompt": jax.random.normal(keys[0], (NUM_PROMPTS, EMBED)),
        "token": jax.random.normal(keys[1], (VOCAB + 1, EMBED)),
        "position": jax.random.normal(keys[2], (LENGTH, EMBED)),
        "mlp": mlp_init(keys[3], [3 * EMBED, 64, VOCAB]),
    }


@jax.jit
def policy_table(params: Params) -> jax.Array:
    """Next-token logits ``[prompts, previous token (or BOS), position, vocab]``.

    The policy conditions on nothing else, so its whole behaviour fits in this small table.
    """
    prompts = jnp.arange(NUM_PROMPTS)[:, None, None]
    previous = jnp.arange(VOCAB + 1)[None, :, None]
    positions = jnp.arange(LENGTH)[None, None, :]
    prompts, previous, positions = jnp.broadcast_arrays(prompts, previous, positions)
    features = jnp.concatenate(
        [params["prompt"][prompts], params["token"][previous], params["position"][positions]],
        axis=-1,
    )
    return mlp_apply(params["mlp"], features)


def answer_logprobs(table: jax.Array, prompts: jax.Array, answers: jax.Array) -> jax.Array:
    """``[n]`` log-probabilities of whole answers ``[n, LENGTH]`` (teacher forcing)."""
    previous = jnp.concatenate([jnp.full_like(answers[:, :1], BOS), answers[:, :-1]], axis=1)
    logits = table[prompts[:, None], previous, jnp.arange(LENGTH)]  # [n, LENGTH, VOCAB]
    return jaxloss.sequence_logprobs(logits, answers)


@jax.jit
def sample(table: jax.Array, prompts: jax.Array, key: jax.Array) -> jax.Array:
    """Answers ``[n, LENGTH]`` sampled token by token from a policy's logits table."""

    def step(previous, inputs):
        position, k = inputs
        token = jax.random.categorical(k, table[prompts, previous, position])
        return token, token

    keys = jax.random.split(key, LENGTH)
    _, tokens = jax.lax.scan(step, jnp.full_like(prompts, BOS), (jnp.arange(LENGTH), keys))
    return tokens.T


def optimal_table(reference_table: jax.Array, tables, beta: float) -> jax.Array:
    """The policy DPO's objective is optimized by: π*(y|x) ∝ π_ref(y|x) · exp(r(x, y) / β).

    Exact, by a backward recursion over positions (soft value iteration): the reward is a
    sum of terms of adjacent tokens and the reference is Markov, so π* is a Markov policy
    too, with ``log π*(y_t | ·) = log π_ref(y_t | ·) + r_t / β + V_{t+1}(y_t) − V_t``.

    Args:
      reference_table: the reference's logits table (``policy_table``).
      tables: the true reward (``true_reward_tables``).
      beta: β.

    Returns:
      π*'s logits table (unnormalized: each row's log-sum-exp is its soft value V_t).
    """
    token_scores, pair_scores = tables
    pair_scores = jnp.concatenate([pair_scores, jnp.zeros((1, VOCAB))])  # BOS: no pair
    # step_reward[prompt, previous, token]
    step_reward = token_scores[:, None, :] + pair_scores[None, :, :]
    log_ref = jax.nn.log_softmax(reference_table, axis=-1)
    value_next = jnp.zeros((NUM_PROMPTS, VOCAB))  # soft value after the last token
    logits = []
    for position in reversed(range(LENGTH)):
        q = log_ref[:, :, position] + step_reward / beta + value_next[:, None, :]
        logits.append(q)
        value_next = jax.nn.logsumexp(q, axis=-1)[:, :VOCAB]
    return jnp.stack(logits[::-1], axis=2)


def reward_init(key: jax.Array) -> Params:
    """Embeddings of prompts and tokens, and an MLP from a token in context to a score."""
    keys = jax.random.split(key, 3)
    return {
        "prompt": jax.random.normal(keys[0], (NUM_PROMPTS, EMBED)),
        "token": jax.random.normal(keys[1], (VOCAB + 1, EMBED)),
        "mlp": mlp_init(keys[2], [3 * EMBED, 32, 1]),
    }


def reward_model(params: Params, prompts: jax.Array, answers: jax.Array) -> jax.Array:
    """``[n]`` learned rewards of answers ``[n, LENGTH]`` to prompts ``[n]``.

    A score per token, given the prompt and the previous token, summed over the answer.
    """
    previous = jnp.concatenate([jnp.full_like(answers[:, :1], BOS), answers[:, :-1]], axis=1)
    prompt = jnp.broadcast_to(params["prompt"][prompts][:, None], (*answers.shape, EMBED))
    features = jnp.concatenate(
        [prompt, params["token"][previous], params["token"][answers]], axis=-1
    )
    return mlp_apply(params["mlp"], features)[..., 0].sum(axis=-1)


def preference_pairs(key, reference: jax.Array, tables, n: int):
    """``n`` prompts, each with two reference answers, labelled by the noisy annotator.

    Returns:
      ``(prompts, chosen, rejected)``; ``[n]``, ``[n, LENGTH]``, ``[n, LENGTH]``.
    """
    k_prompt, k_a, k_b, k_label = jax.random.split(key, 4)
    prompts = jax.random.randint(k_prompt, (n,), 0, NUM_PROMPTS)
    a, b = sample(reference, prompts, k_a), sample(reference, prompts, k_b)
    gap = true_reward(tables, prompts, a) - true_reward(tables, prompts, b)
    a_wins = jax.random.bernoulli(k_label, jax.nn.sigmoid(gap))[:, None]
    return prompts, jnp.where(a_wins, a, b), jnp.where(a_wins, b, a)


def train(
    loss_fn, params, data, steps: int, learning_rate: float, seed: int, evaluate, every, desc
):
    """Adam on ``loss_fn(params, *batch)`` over shuffled minibatches of ``data``.

    Like ``_common.fit``, with an evaluation every ``every`` steps for the curves.

    Args:
      loss_fn: ``(params, *batch) -> scalar loss``.
      params: the initial parameters.
      data: a tuple of arrays with the examples along axis 0; a batch is one row slice of each.
      steps: number of steps of ``BATCH`` examples.
      learning_rate: Adam's step size.
      seed: seed of the shuffling.
      evaluate: ``params -> array`` of held-out numbers.
      every: steps between evaluations.
      desc: the progress bar's label.

    Returns:
      ``(params, losses [steps], evaluations)``: ``evaluations`` is a list of
      ``(step, evaluate(params))`` taken at step 0 and every ``every`` steps.
    """
    optimizer = optax.adam(learning_rate)

    @jax.jit
    def step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = optimizer.init(params)
    order = batches(np.random.default_rng(seed), data[0].shape[0], BATCH, steps)
    losses, evaluations = [], [(0, evaluate(params))]
    for i, index in enumerate(tqdm(order, total=steps, desc=desc, leave=False), start=1):
        params, opt_state, loss = step(params, opt_state, tuple(x[index] for x in data))
        losses.append(loss)
        if i % every == 0 or i == steps:
            evaluations.append((i, evaluate(params)))
    losses = np.asarray(jax.device_get(losses), dtype=np.float64)
    if not np.all(np.isfinite(losses)):
        raise FloatingPointError(f"{desc}: the training loss became NaN or inf")
    return params, losses, evaluations


def win_rate(rewards: jax.Array, baseline: jax.Array) -> jax.Array:
    """Fraction of paired comparisons won, a tie counting half."""
    return jnp.mean((rewards > baseline) + 0.5 * (rewards == baseline))


def main() -> None:
    """Simulates the preferences, trains the reward model and the DPO policy, reports."""
    args = parse_args(__doc__)
    started = time.perf_counter()
    n_train = 4000 if args.quick else 20000
    n_test = 2000 if args.quick else 10000
    rm_steps = 400 if args.quick else 1500
    dpo_steps = 200 if args.quick else 1500
    every = 20 if args.quick else 50

    keys = jax.random.split(jax.random.key(args.seed), 8)
    tables = true_reward_tables(keys[0])
    reference_params = policy_init(keys[1])
    reference = policy_table(reference_params)
    train_pairs = preference_pairs(keys[2], reference, tables, n_train)
    test_pairs = preference_pairs(keys[3], reference, tables, n_test)
    test_prompts, test_chosen, test_rejected = test_pairs
    true_gap = true_reward(tables, test_prompts, test_chosen) - true_reward(
        tables, test_prompts, test_rejected
    )

    def agreement(gap: jax.Array) -> jax.Array:
        """Held-out Bradley–Terry loss, agreement with the labels and with the true order.

        A pair the reward ties counts half (DPO's implicit reward ties them all at step 0).
        """
        return jnp.stack(
            [
                jaxloss.bradley_terry(gap, jnp.zeros_like(gap)),
                win_rate(gap, 0.0),
                win_rate(gap * jnp.sign(true_gap), 0.0),
            ]
        )

    # Stage 1: the reward model.
    def rm_loss(params, prompts, chosen, rejected):
        return jaxloss.bradley_terry(
            reward_model(params, prompts, chosen), reward_model(params, prompts, rejected)
        )

    @jax.jit
    def rm_evaluate(params):
        return agreement(
            reward_model(params, test_prompts, test_chosen)
            - reward_model(params, test_prompts, test_rejected)
        )

    rm_params, rm_losses, rm_evals = train(
        rm_loss,
        reward_init(keys[4]),
        train_pairs,
        rm_steps,
        1e-3,
        args.seed,
        rm_evaluate,
        every,
        "reward model (bradley_terry)",
    )

    # Stage 2: DPO from the reference policy, on the same training pairs.
    prompts, chosen, rejected = train_pairs
    ref_chosen = answer_logprobs(reference, prompts, chosen)
    ref_rejected = answer_logprobs(reference, prompts, rejected)

    def dpo_loss(params, prompts, chosen, rejected, ref_chosen, ref_rejected):
        table = policy_table(params)
        return jaxloss.dpo(
            answer_logprobs(table, prompts, chosen),
            answer_logprobs(table, prompts, rejected),
            ref_chosen,
            ref_rejected,
            beta=BETA,
        )

    eval_prompts = jnp.arange(EVAL_SAMPLES) % NUM_PROMPTS
    ref_answers = sample(reference, eval_prompts, keys[5])
    ref_true = true_reward(tables, eval_prompts, ref_answers)
    ref_learned = reward_model(rm_params, eval_prompts, ref_answers)

    @jax.jit
    def score(table):
        """Win rates against the reference (true and learned reward), mean reward, KL."""
        answers = sample(table, eval_prompts, keys[6])
        rewards = true_reward(tables, eval_prompts, answers)
        kl = jnp.mean(
            answer_logprobs(table, eval_prompts, answers)
            - answer_logprobs(reference, eval_prompts, answers)
        )
        learned = reward_model(rm_params, eval_prompts, answers)
        return jnp.stack(
            [win_rate(rewards, ref_true), win_rate(learned, ref_learned), jnp.mean(rewards), kl]
        )

    @jax.jit
    def implicit_agreement(table):
        """``agreement`` of the implicit reward β (log π − log π_ref) on the held-out pairs;
        its Bradley–Terry loss is the held-out DPO loss."""
        return agreement(
            BETA
            * (
                answer_logprobs(table, test_prompts, test_chosen)
                - answer_logprobs(reference, test_prompts, test_chosen)
                - answer_logprobs(table, test_prompts, test_rejected)
                + answer_logprobs(reference, test_prompts, test_rejected)
            )
        )

    def dpo_evaluate(params):
        table = policy_table(params)
        return jnp.concatenate([score(table), implicit_agreement(table)])

    data = (prompts, chosen, rejected, ref_chosen, ref_rejected)
    policy_params, dpo_losses, dpo_evals = train(
        dpo_loss,
        reference_params,
        data,
        dpo_steps,
        1e-3,
        args.seed,
        dpo_evaluate,
        every,
        f"DPO (β = {BETA})",
    )
    policy = policy_table(policy_params)
    dpo_values = np.array([np.asarray(v) for _, v in dpo_evals])
    dpo_true = true_reward(tables, eval_prompts, sample(policy, eval_prompts, keys[6]))

    # The exact optimum of DPO's objective for each β: the reward–KL frontier.
    optimal = jax.jit(optimal_table)
    frontier = np.array([np.asarray(score(optimal(reference, tables, b))) for b in FRONTIER])
    optimum = optimal(reference, tables, BETA)
    optimum_scores = score(optimum)
    optimum_true = true_reward(tables, eval_prompts, sample(optimum, eval_prompts, keys[6]))
    # A second, independent sample of the reference: what a policy equal to it scores.
    ref_scores = score(reference).at[3].set(0.0)  # its KL estimate is exactly 0

    def row(name, values):
        return [name, *(float(v) for v in values)]

    ceiling = agreement(true_gap)
    stage1 = markdown_table(
        [
            f"ranking {n_test} held-out pairs ({n_train} training pairs)",
            "Bradley–Terry loss",
            "agrees with annotator",
            "agrees with true order",
        ],
        [
            row("true reward (the ceiling)", ceiling),
            row(f"reward model, bradley_terry, {rm_steps} steps", rm_evals[-1][1]),
            row(f"DPO's implicit reward β·log(π/π_ref), {dpo_steps} steps", dpo_values[-1, 4:]),
        ],
    )
    stage2 = markdown_table(
        [
            f"policy ({EVAL_SAMPLES} sampled answers)",
            "win rate vs reference (true reward)",
            "win rate vs reference (reward model)",
            "mean true reward",
            "KL to reference (nats)",
        ],
        [
            row("reference (a second sample)", ref_scores),
            row(f"DPO, β = {BETA}, {dpo_steps} steps", dpo_values[-1, :4]),
            row(f"optimum of DPO's objective, π_ref·exp(r/{BETA}) (exact)", optimum_scores),
        ],
    )
    notes = (
        f"The annotator's labels are noisy (P(a ≻ b) = σ(r_a − r_b)): even the true reward "
        f"agrees with only {float(ceiling[1]):.3f} of them (expected "
        f"{float(jnp.mean(jax.nn.sigmoid(jnp.abs(true_gap)))):.3f}).\n"
        f"Win rates pair the answers of each policy to the same prompts "
        f"({EVAL_SAMPLES // NUM_PROMPTS} per prompt); ties count half. KL(π‖π_ref) is the "
        f"mean of log π − log π_ref over the policy's own answers."
    )
    report(
        args.out,
        "preference_toy",
        "Toy RLHF: a Bradley–Terry reward model, then DPO, scored by the hidden true reward",
        stage1 + "\n\n" + stage2,
        started,
        notes,
    )

    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
    rm_at = np.array([s for s, _ in rm_evals])
    rm_values = np.array([np.asarray(v) for _, v in rm_evals])
    dpo_at = np.array([s for s, _ in dpo_evals])
    for ax, losses, at, values, title in (
        (axes[0, 0], rm_losses, rm_at, rm_values, "Stage 1: reward model (bradley_terry)"),
        (axes[1, 0], dpo_losses, dpo_at, dpo_values[:, 4:], f"Stage 2: DPO (β = {BETA})"),
    ):
        ax.plot(np.arange(1, len(losses) + 1), losses, color="0.75", lw=0.7, label="train batch")
        ax.plot(at, values[:, 0], color="C0", label="held-out")
        ax.axhline(float(ceiling[0]), color="C0", ls=":", label="true reward (the floor)")
        ax.set(xlabel="step", ylabel="Bradley–Terry loss", title=title)
        ax.legend()
    axes[1, 0].set_ylabel("DPO loss (held-out: Bradley–Terry loss of β·log(π/π_ref))")

    ax = axes[0, 1]
    ax.plot(rm_at, rm_values[:, 1], color="C1", label="reward model vs annotator")
    ax.plot(rm_at, rm_values[:, 2], color="C4", label="reward model vs true order")
    ax.plot(dpo_at, dpo_values[:, 5], color="C1", ls="--", label="DPO implicit vs annotator")
    ax.plot(dpo_at, dpo_values[:, 6], color="C4", ls="--", label="DPO implicit vs true order")
    ax.axhline(float(ceiling[1]), color="C1", ls=":", label="true reward vs annotator")
    ax.set(
        xlabel="step",
        ylabel="fraction of held-out pairs ranked alike",
        title="Held-out ranking accuracy of the learned rewards",
    )
    ax.legend(loc="lower right", fontsize="small")

    ax = axes[0, 2]
    ax.plot(dpo_at, dpo_values[:, 0], color="C2", label="DPO (true reward)")
    ax.plot(dpo_at, dpo_values[:, 1], color="C2", ls="--", label="DPO (reward model)")
    ax.axhline(float(optimum_scores[0]), color="k", ls=":", label=f"optimum for β = {BETA}")
    ax.axhline(0.5, color="0.5", lw=0.8)
    ax.set(xlabel="DPO step", ylabel="win rate vs reference", title="Stage 2: win rate")
    ax.legend(loc="lower right")

    ax = axes[1, 1]
    ax.plot(frontier[:, 3], frontier[:, 2], "k-", lw=1, label="optimum π_ref·exp(r/β), all β")
    ax.plot(optimum_scores[3], optimum_scores[2], "k*", ms=12, label=f"optimum, β = {BETA}")
    path = ax.scatter(dpo_values[:, 3], dpo_values[:, 2], c=dpo_at, s=14, cmap="viridis")
    fig.colorbar(path, ax=ax, label="DPO step")
    ax.set(
        xlabel="KL(π‖π_ref), nats",
        ylabel="mean true reward",
        title="Stage 2: reward vs KL (DPO's path)",
    )
    ax.legend(loc="lower right")

    ax = axes[1, 2]
    samples = {
        "reference": ref_true,
        f"DPO, β = {BETA}": dpo_true,
        f"optimum, β = {BETA}": optimum_true,
    }
    values = np.concatenate([np.asarray(v) for v in samples.values()])
    bins = np.linspace(values.min(), values.max(), 50)
    for name, rewards in samples.items():
        ax.hist(np.asarray(rewards), bins=bins, alpha=0.5, label=name)
    ax.set(
        xlabel="true reward of a sampled answer",
        ylabel="answers",
        title="True reward of sampled answers",
    )
    ax.legend()
    fig.tight_layout()
    save_figure(fig, args.out, "preference_toy")

    # Sanity checks with wide margins (the full run gives about 0.89 and 0.999).
    if float(rm_evals[-1][1][2]) < 0.7:
        raise SystemExit("the reward model ranks fewer than 70% of held-out pairs correctly")
    if float(dpo_values[-1, 0]) < 0.75:
        raise SystemExit("the DPO policy wins fewer than 75% of comparisons with the reference")


if __name__ == "__main__":
    main()
