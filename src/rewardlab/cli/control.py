"""``rewardlab control``: rewards for control agents learned from preferences between their behaviours.

Simulate or collect segment preferences (``control prefs``), learn a reward from them under a preference
model (``control learn-reward``), train a policy on it and compare with the true reward (``control
train-policy``), pick the best of K actions by a learned reward (``control select``), plan for risk with
distributional DP (``control cvar``), and let a language model shape the reward (``control lm-reward
icpl|lare|oni``). ``--env`` names a shipped gridworld, ``random:SIZE``, a layout file, or a Gymnasium id
(``rewardlab.control.environments``). The work is in ``rewardlab.control.runs`` and the modules it calls.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer

from rewardlab.cli.base import app, out, user_errors

control_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help="Rewards for control agents: segment preferences, reward learning, policies, risk.",
)
app.add_typer(control_app, name="control")

HERON_ORDER = "goal,-hazard,coin,-mud,-step"
"""``control.heron.DEFAULT_ORDER``, written here so that ``--help`` loads no torch (a test keeps them equal)."""

EnvOption = Annotated[
    str, typer.Option(help="A shipped layout (delivery, cliff, ...), random:SIZE, a layout file or a Gymnasium id")
]
SeedOption = Annotated[int, typer.Option(help="Seed of the environment, the segments and the labels")]
GammaOption = Annotated[float, typer.Option(help="Discount of the gridworld")]
SlipOption = Annotated[float, typer.Option(help="Gridworld: probability that a move goes another way")]
WeightsOption = Annotated[
    str | None, typer.Option(help="Gridworld true reward, comma-separated over step,coin,mud,goal,hazard")
]


def _weights(text: str | None):
    import numpy as np

    from rewardlab.control.mdp import CELL_FEATURES, DELIVERY_WEIGHTS

    if text is None:
        return np.array(DELIVERY_WEIGHTS)
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--weights {text!r}: expected {len(CELL_FEATURES)} numbers separated by commas") from None
    if len(values) != len(CELL_FEATURES):
        raise ValueError(
            f"--weights needs {len(CELL_FEATURES)} numbers ({', '.join(CELL_FEATURES)}), got {len(values)}"
        )
    return np.array(values)


def _tabular(env: str, seed: int, gamma: float, slip: float):
    from rewardlab.control.environments import is_tabular, tabular_env

    if not is_tabular(env):
        raise ValueError(f'--env "{env}": this command runs on gridworlds (a shipped layout, random:SIZE or a file)')
    return tabular_env(env, seed=seed, gamma=gamma, slip=slip)


@control_app.command("prefs")
@user_errors
def control_prefs(
    output: Annotated[Path, typer.Option(help="Segment preferences to write (JSONL)")],
    env: EnvOption = "delivery",
    model: Annotated[
        str | None,
        typer.Option(
            help="The simulated human: partial-return, regret or heron [default: regret; Gymnasium: partial-return]"
        ),
    ] = None,
    n: Annotated[int, typer.Option(help="Pairs of segments")] = 300,
    segment_length: Annotated[int, typer.Option(help="Steps per segment")] = 3,
    temperature: Annotated[float, typer.Option(help="Bradley-Terry temperature of the simulated human")] = 1.0,
    behaviour: Annotated[str, typer.Option(help="random or epsilon-greedy (the true optimal policy)")] = "random",
    epsilon: Annotated[float, typer.Option(help="epsilon-greedy: probability of a random action")] = 0.3,
    heron_order: Annotated[
        str, typer.Option(help="heron: factors most important first, '-' when less is better, '=margin'")
    ] = HERON_ORDER,
    ask: Annotated[
        bool, typer.Option(help="Gridworld: ask me (in the terminal) instead of simulating a human")
    ] = False,
    actions_of: Annotated[
        Path | None,
        typer.Option(help="Gymnasium: judge pairs of this policy's sampled actions by their outcome (DeformPAM)"),
    ] = None,
    lookahead: Annotated[int, typer.Option(help="--actions-of: steps of the policy after the action, judged")] = 10,
    weights: WeightsOption = None,
    gamma: GammaOption = 0.99,
    slip: SlipOption = 0.0,
    seed: SeedOption = 0,
) -> None:
    """Simulate a human's preferences between pairs of equal-length segments under a preference model
    (Knox et al.'s partial return or regret) or HERON's ranked reward factors, from the true reward. On a
    Gymnasium environment: random-play segments labelled by Bradley-Terry on their true returns. With --ask,
    you judge the gridworld segments yourself."""
    import numpy as np

    from rewardlab.control.ask import ask_preferences
    from rewardlab.control.environments import is_tabular
    from rewardlab.control.gym_env import collect_segments, simulate_segment_preferences
    from rewardlab.control.heron import heron_preferences, parse_factors
    from rewardlab.control.preference_models import sample_segment_pairs, simulate_preferences
    from rewardlab.control.runs import policy_action_preferences
    from rewardlab.control.segments import write_preferences
    from rewardlab.destinations import check_jsonl_destination

    check_jsonl_destination(output)
    if is_tabular(env):
        model = model or "regret"
        mdp, true = _tabular(env, seed, gamma, slip), _weights(weights)
        rng = np.random.default_rng(seed)
        behaviour = behaviour.replace("-", "_")
        if ask:
            pairs = sample_segment_pairs(mdp, n, segment_length, rng, behaviour, epsilon, true)
            records = ask_preferences(mdp, pairs, read=typer.prompt, write=out.print, task=env)
            model = "asked"
        elif model == "heron":
            factors = parse_factors(heron_order, mdp.feature_names)
            pairs = sample_segment_pairs(mdp, n, segment_length, rng, behaviour, epsilon, true)
            records = heron_preferences(mdp, pairs, factors, task=env)
        else:
            records = simulate_preferences(
                mdp, true, n, model, segment_length, rng, temperature, behaviour, epsilon, task=env
            )
    elif ask:
        raise ValueError("--ask draws gridworld segments; a Gymnasium environment's segments are simulated only")
    elif (model := model or "partial-return") != "partial-return":
        raise ValueError(f"--model {model}: a Gymnasium environment's labeller is partial-return (no V* to regret)")
    elif actions_of is not None:
        records = policy_action_preferences(actions_of, env, n, lookahead, seed)
        model = "action outcomes"
    else:
        segments = collect_segments(env, 2 * n, segment_length, seed=seed)
        records = simulate_segment_preferences(segments, n, seed, rationality=1 / temperature)
    if not records:
        raise ValueError("no pair was judged: nothing written")
    write_preferences(output, records)
    counts = {side: sum(r.preferred == side for r in records) for side in ("a", "b", "equal")}
    out.print(
        f"{output}: {len(records)} pairs on {env} ({model}); a {counts['a']}, b {counts['b']}, equal {counts['equal']}"
    )


@control_app.command("learn-reward")
@user_errors
def control_learn_reward(
    preferences: Annotated[Path, typer.Argument(help="Segment preferences (JSONL, as control prefs writes)")],
    output: Annotated[Path, typer.Option(help="Folder of the learned reward (reward.json; a network's weights too)")],
    env: EnvOption = "delivery",
    model: Annotated[
        str | None,
        typer.Option(
            help="partial-return, regret, heron (relabel by --heron-order) or pearl (--source) "
            "[default: regret; Gymnasium: partial-return]"
        ),
    ] = None,
    heron_order: Annotated[str, typer.Option(help="heron: the ranked factors")] = HERON_ORDER,
    source: Annotated[Path | None, typer.Option(help="pearl: labelled preferences of the source task")] = None,
    source_env: Annotated[str | None, typer.Option(help="pearl: the source task's environment")] = None,
    steps: Annotated[int, typer.Option(help="Adam steps")] = 300,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 0.1,
    l2: Annotated[float, typer.Option(help="L2 penalty on the weights (fixes their scale)")] = 1e-3,
    weights: WeightsOption = None,
    gamma: GammaOption = 0.99,
    slip: SlipOption = 0.0,
    seed: SeedOption = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
) -> None:
    """Learn a reward from segment preferences. On a gridworld: a linear reward under the chosen preference
    model, reported by how well its optimal policy does on the true reward (normalised return: 1 optimal, 0 no
    better than acting at random). On a Gymnasium environment: an MLP over (observation, action) by
    Bradley-Terry on segment returns."""
    from rewardlab.control.environments import is_tabular
    from rewardlab.control.gym_env import reward_config
    from rewardlab.control.heron import heron_preferences, parse_factors
    from rewardlab.control.reward_learning import greedy_normalized_return, learn_linear_reward, save_linear_reward
    from rewardlab.control.reward_net import RewardTrainConfig, train_reward
    from rewardlab.control.runs import pearl_reward
    from rewardlab.control.segments import read_preferences
    from rewardlab.destinations import check_folder_destination

    check_folder_destination(output)
    records = read_preferences(preferences)
    ties = sum(r.preferred == "equal" for r in records)
    if ties > len(records) / 2:
        warnings.warn(f"{ties} of the {len(records)} pairs are ties: the reward has little to learn from", stacklevel=1)
    if not is_tabular(env):
        if (model or "partial-return") != "partial-return":
            raise ValueError(f"--model {model}: a Gymnasium environment's reward is learned by partial return")
        net = train_reward(records, RewardTrainConfig(seed=seed), reward_config(env), progress=progress)
        net.save(output)
        out.print(f"{output}: a reward over (observation, action) of {env} from {len(records)} pairs")
        return
    model = model or "regret"
    mdp = _tabular(env, seed, gamma, slip)
    about: dict[str, object] = {"env": env, "model": model, "preferences": str(preferences), "pairs": len(records)}
    if model == "pearl":
        if source is None or source_env is None:
            raise ValueError("--model pearl needs --source (labelled source preferences) and --source-env")
        source_mdp = _tabular(source_env, seed, gamma, slip)
        learned = pearl_reward(records, mdp, read_preferences(source), source_mdp, steps, seed)
        about.update(source=str(source), source_env=source_env)
    else:
        learner = model
        if model == "heron":
            factors = parse_factors(heron_order, mdp.feature_names)
            records = heron_preferences(mdp, [(r.a, r.b) for r in records], factors, task=env)
            learner, about["heron_order"] = "partial_return", heron_order
        learned = learn_linear_reward(mdp, records, learner, steps=steps, lr=lr, l2=l2, progress=progress)
    true = _weights(weights)
    about["normalized_return"] = greedy_normalized_return(mdp, learned, true)
    about["true_weights"] = dict(zip(mdp.feature_names, true.tolist(), strict=True))
    save_linear_reward(output / "reward.json", mdp, learned, **about)
    shown = ", ".join(f"{name} {w:+.3f}" for name, w in zip(mdp.feature_names, learned, strict=True))
    out.print(f"{output}: {shown}; normalised return of its optimal policy {about['normalized_return']:.3f}")


@control_app.command("train-policy")
@user_errors
def control_train_policy(
    output: Annotated[Path, typer.Option(help="Run folder: report.json and the policy")],
    reward: Annotated[str, typer.Option(help="A learned reward folder (control learn-reward) or true")] = "true",
    env: EnvOption = "delivery",
    algorithm: Annotated[str, typer.Option(help="Gymnasium: ppo, a2c, dqn, sac, td3 or ddpg")] = "ppo",
    timesteps: Annotated[int, typer.Option(help="Gymnasium: environment steps of training")] = 50_000,
    n_envs: Annotated[int, typer.Option(help="Gymnasium: parallel environments")] = 8,
    compare_true: Annotated[bool, typer.Option(help="Gymnasium: also train on the true reward")] = True,
    episodes: Annotated[int, typer.Option(help="Gymnasium: evaluation episodes")] = 20,
    weights: WeightsOption = None,
    gamma: GammaOption = 0.99,
    slip: SlipOption = 0.0,
    seed: SeedOption = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
) -> None:
    """Train a policy on a reward and report its true return beside the policy trained on the true reward, and
    how the learned reward correlates with the true one. A gridworld is solved exactly (value iteration); a
    Gymnasium environment is trained with Stable-Baselines3."""
    from rewardlab.atomic import write_text_atomic
    from rewardlab.control.environments import is_tabular
    from rewardlab.control.reward_learning import load_linear_reward
    from rewardlab.control.reward_net import RewardNet
    from rewardlab.control.runs import gym_policy_report, tabular_policy_report
    from rewardlab.destinations import check_folder_destination

    check_folder_destination(output)
    if is_tabular(env):
        mdp = _tabular(env, seed, gamma, slip)
        learned = None if reward == "true" else load_linear_reward(_reward_file(reward), mdp)
        report = tabular_policy_report(mdp, _weights(weights), learned)
        first = report["policies"]["learned" if learned is not None else "true"]
        write_text_atomic(output / "policy.json", json.dumps(first, indent=2) + "\n")
    else:
        net = None if reward == "true" else RewardNet.load(_reward_file(reward).parent)
        report = gym_policy_report(
            env, net, output, algorithm, timesteps, n_envs, compare_true, episodes, seed, progress
        )
    report = {"env": env, "reward": reward, **report}
    write_text_atomic(output / "report.json", json.dumps(report, indent=2) + "\n")
    for name, row in report["policies"].items():
        shown = f"{row['true_return']:.2f}" + (f" ({row['low']:.2f}–{row['high']:.2f})" if "low" in row else "")
        extra = f", normalised {row['normalized_return']:.3f}" if "normalized_return" in row else ""
        out.print(f"policy trained on the {name} reward: true return {shown}{extra}")
    if "correlation" in report:
        c = report["correlation"]
        out.print(
            f"learned vs true reward over {c['n']} {c['over']}: "
            f"Pearson {c['pearson']:.3f}, Spearman {c['spearman']:.3f}"
        )
    out.print(f"{output / 'report.json'}")


def _reward_file(reward: str) -> Path:
    path = Path(reward)
    if not path.exists():
        raise FileNotFoundError(f"--reward {reward}: no such folder (a control learn-reward output, or true)")
    return path / "reward.json" if path.is_dir() else path


@control_app.command("select")
@user_errors
def control_select(
    reward: Annotated[Path, typer.Argument(help="A learned reward folder over (observation, action)")],
    policy: Annotated[Path, typer.Argument(help="A stochastic policy folder (control train-policy's policy-*)")],
    k: Annotated[list[int], typer.Option(help="Candidates per step (repeat; 1 is the raw policy)")] = [1, 4, 16],  # noqa: B006
    episodes: Annotated[int, typer.Option(help="Evaluation episodes per K")] = 20,
    seed: SeedOption = 0,
) -> None:
    """DeformPAM's reward-guided action selection: at each step, sample K actions from the policy and take the one
    the learned reward scores highest; report the true return for each K."""
    from rewardlab.control.reward_net import RewardNet
    from rewardlab.control.runs import selection_returns

    for candidates, score in selection_returns(RewardNet.load(reward), policy, k, episodes, seed).items():
        out.print(f"best of {candidates:>3}: true return {score.mean:.2f} ({score.low:.2f}–{score.high:.2f})")


@control_app.command("cvar")
@user_errors
def control_cvar(
    env: EnvOption = "cliff",
    alpha: Annotated[list[float], typer.Option(help="CVaR levels (repeat): the worst α share of returns")] = [0.1],  # noqa: B006
    horizon: Annotated[int, typer.Option(help="Steps per episode")] = 40,
    stock_step: Annotated[
        float, typer.Option(help="Spacing of the stock grid (exact when rewards are multiples)")
    ] = 1.0,
    episodes: Annotated[int, typer.Option(help="Rollouts per policy for the interval")] = 10_000,
    weights: WeightsOption = None,
    gamma: GammaOption = 1.0,
    slip: SlipOption = 0.1,
    seed: SeedOption = 0,
    output: Annotated[Path | None, typer.Option(help="Also write the table as JSON here")] = None,
) -> None:
    """Plan for risk: the CVaR-optimal policy by stock-augmented distributional DP beside the mean-optimal one,
    each with its mean and CVaR (exact, and from rollouts with a bootstrap interval)."""
    from rewardlab.atomic import write_text_atomic
    from rewardlab.control.runs import cvar_table
    from rewardlab.destinations import check_file_destination

    if output is not None:
        check_file_destination(output)
    mdp = _tabular(env, seed, gamma, slip)
    rows = cvar_table(mdp, _weights(weights), alpha, horizon, stock_step, episodes, seed)
    for row in rows:
        cells = "  ".join(
            "CVaR {:g} {exact:.2f} (rollouts {rollouts:.2f}, {low:.2f}–{high:.2f})".format(a, **row[f"cvar_{a:g}"])
            for a in alpha
        )
        out.print(f"{row['policy']:>18}: mean {row['mean']:.2f}  {cells}")
    if output is not None:
        write_text_atomic(
            output, json.dumps({"env": env, "slip": slip, "horizon": horizon, "rows": rows}, indent=2) + "\n"
        )


@control_app.command("lm-reward")
@user_errors
def control_lm_reward(
    method: Annotated[str, typer.Argument(help="icpl (the LM writes reward code), lare (factors) or oni (labels)")],
    output: Annotated[Path, typer.Option(help="Results to write (JSON: every reply, error and score)")],
    env: EnvOption = "delivery",
    lm: Annotated[str, typer.Option(help="smollm2 or a local causal LM folder")] = "smollm2",
    iterations: Annotated[int, typer.Option(help="icpl: rounds of rewriting")] = 3,
    candidates: Annotated[int, typer.Option(help="icpl, lare: candidates the LM writes per round")] = 4,
    decoder: Annotated[str, typer.Option(help="lare: linear or mlp decoder of the factors")] = "linear",
    verify: Annotated[bool, typer.Option(help="lare: the LM checks each candidate's sandbox result")] = False,
    beta: Annotated[float, typer.Option(help="oni: weight of the intrinsic reward")] = 0.3,
    online: Annotated[
        bool, typer.Option(help="oni: a Q-learning agent explores while the LM labels captions in the background")
    ] = False,
    episodes: Annotated[int, typer.Option(help="oni --online: episodes of Q-learning")] = 150,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens the LM writes at most per reply")] = 160,
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the LM")] = 0.7,
    weights: WeightsOption = None,
    gamma: GammaOption = 0.99,
    seed: SeedOption = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars")] = True,
) -> None:
    """Let a language model shape a gridworld's reward and measure the result on the true reward: ICPL (reward
    code improved from preferences over its behaviour), LaRe (latent factors, return decomposition) or ONI
    (captions labelled helpful, an intrinsic reward). Generated code runs in the sandbox."""
    import dataclasses

    from rewardlab.atomic import write_text_atomic
    from rewardlab.control.icpl import ICPLConfig, icpl
    from rewardlab.control.language import LMGenerate
    from rewardlab.control.lare import LaReConfig, lare
    from rewardlab.control.oni import ONIConfig, ONIOnlineConfig, oni
    from rewardlab.control.runs import oni_online_report
    from rewardlab.destinations import check_file_destination

    if method not in ("icpl", "lare", "oni"):
        raise ValueError(f"unknown method {method!r} (known: icpl, lare, oni)")
    check_file_destination(output)
    mdp, true = _tabular(env, seed, gamma, 0.0), _weights(weights)
    if method == "oni" and online:
        generate = LMGenerate.load(lm, max_new_tokens=4, temperature=0.0, seed=seed)
        report = oni_online_report(mdp, generate, true, ONIOnlineConfig(beta=beta, episodes=episodes, seed=seed))
        write_text_atomic(output, json.dumps({"method": "oni-online", "env": env, "lm": lm, **report}, indent=2) + "\n")
        for name, row in report.items():
            first = row["first_goal_episode"] or "never"
            out.print(
                f"{name:>6}: goal first reached in episode {first}, in {row['share_reaching_goal']:.0%} of episodes; "
                f"final normalised return {row['normalized_return']:.3f}"
            )
        return
    if method == "oni":
        generate = LMGenerate.load(lm, max_new_tokens=4, temperature=0.0, seed=seed)
        result = oni(mdp, generate, true, ONIConfig(beta=beta, seed=seed), progress=progress)
        summary = (
            f"normalised return: sparse reward {result.sparse_normalized:.3f}, "
            f"with ONI's {result.shaped_normalized:.3f}"
        )
    else:
        generate = LMGenerate.load(lm, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        if method == "icpl":
            config = ICPLConfig(iterations=iterations, candidates=candidates, seed=seed)
            result = icpl(mdp, generate, true, config, progress=progress)
            best = ", ".join("none ran" if b is None else f"{b:.3f}" for b in result.best_per_iteration)
            summary = f"{result.ran_fraction:.0%} of candidates ran; best normalised return per round: {best}"
        else:
            config = LaReConfig(candidates=candidates, decoder=decoder, verify=verify, seed=seed)
            result = lare(mdp, generate, true, config, progress=progress)
            fitted = "no candidate ran" if result.lare is None else f"{result.lare.normalized:.3f}"
            ran = f"{result.ran_before_verification} of {candidates} candidates ran as written, " if verify else ""
            summary = (
                f"{ran}{result.ran_fraction:.0%} of candidates ran; normalised return {fitted} "
                f"(raw features {result.raw.normalized:.3f})"
            )
    row = {"method": method, "env": env, "lm": lm, "result": _jsonable(dataclasses.asdict(result))}
    write_text_atomic(output, json.dumps(row, indent=2) + "\n")
    out.print(f"{output}: {summary}")


def _jsonable(value):
    """Dataclass fields as JSON: arrays as lists."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
