"""Best-of-N against a proxy reward, judged by a gold reward: the over-optimisation curves of Gao et al. 2022.

For each prompt, n replies are sampled from the policy once (cached, ``sampling/cache.py``) and
scored by the gold model and every proxy. For every N ≤ n, the unbiased estimator of
``best_of_n.best_of_n_curve`` gives the expected proxy score and the expected gold score of the
reply the proxy picks among N, plotted against KL_bon(N) = log N − (N−1)/N. With several proxies
(an ensemble, Coste et al. 2024), the reply is picked by the first proxy alone and by each
aggregation of ``rewards.aggregate.aggregate_ensemble`` (mean, wco, uwo); the gold model's own
pick is the ceiling. As in ``models.ensemble.RewardEnsemble``, each proxy's scores are first
standardised with its own saved statistics, (r − reward_mean) / reward_std
(``rewards.aggregate.standardise_members``), so that a proxy on a wider scale does not decide the
ensemble; if one proxy has no statistics, none is standardised (a ``RawEnsembleWarning`` says
which), and the report says which way the ensemble was aggregated. The single proxy's curve stays
in its own units.

Beside best-of-N, ``kl_optimal`` is the optimum of max E_φ[score] s.t. KL(φ ‖ π) ≤ KL_bon(N) on
the same samples (Yang et al. 2024; ``sampling/kl_optimal.py``): the tilt of each prompt's
empirical distribution by the first selection rule's score, judged by gold like the rest.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from rewardlab.data.records import Prompt
from rewardlab.precision import Precision, precision_problem, resolve_precision
from rewardlab.rewards.aggregate import aggregate_ensemble, standardise_members
from rewardlab.runs.config import Checked
from rewardlab.sampling.best_of_n import best_of_n_curve, best_of_n_kl, best_of_n_weights
from rewardlab.sampling.cache import GenerationCache, generation_key
from rewardlab.sampling.generation import Sample, SampleConfig, sample_replies
from rewardlab.sampling.kl_optimal import solve_tilt, tilt_curve

if TYPE_CHECKING:
    from rewardlab.models.reward_model import RewardModelInfo

ORACLE = "gold (oracle)"
"""Selection by the gold model itself: the best any proxy could do."""


@dataclass
class OveroptConfig(Checked):
    policy: str
    gold: str
    proxies: list[str]
    prompts: list[Prompt]
    sampling: SampleConfig = field(default_factory=SampleConfig)
    precision: Precision = "auto"
    uncertainty_weight: float = 1.0
    cache_dir: str = "."
    progress: bool = False

    def problems(self) -> list[str]:
        from rewardlab.models.reward_model import saved_model_problem

        problems = self.sampling.problems()
        if not self.prompts:
            problems.append("no prompts to sample from")
        if not self.proxies:
            problems.append("give at least one proxy reward model")
        if self.uncertainty_weight < 0:
            problems.append(f"uncertainty_weight must be ≥ 0 (got {self.uncertainty_weight})")
        if problem := precision_problem(self.precision):
            problems.append(problem)
        for role, path in [("gold", self.gold)] + [("proxy", p) for p in self.proxies]:
            if problem := saved_model_problem(path):
                problems.append(f"{role} {path}: {problem}")
        return problems


@dataclass
class Generations:
    samples: list[list[Sample]]
    cache_path: Path
    reused_prompts: int
    seconds: float


def generate(config: OveroptConfig) -> Generations:
    """The replies of every prompt: from the cache where present, sampled (and cached) where not."""
    from rewardlab.models.causal_lm import CausalLM

    dtype = resolve_precision(config.precision)
    key = generation_key(config.policy, config.prompts, config.sampling, dtype)
    header = {"policy": config.policy, "sampling": config.sampling.as_dict(), "precision": dtype}
    cache = GenerationCache(config.cache_dir, key, {**header, "prompts": len(config.prompts)})
    done = cache.load(len(config.prompts))
    missing = [i for i in range(len(config.prompts)) if i not in done]
    start = time.perf_counter()
    if missing:
        lm = CausalLM.from_pretrained(config.policy)
        if dtype == "bf16":
            lm.model.to(torch.bfloat16)
        sample_replies(
            lm,
            [config.prompts[i] for i in missing],
            config.sampling,
            progress=config.progress,
            on_prompt=lambda j, samples: cache.add(missing[j], config.prompts[missing[j]], samples),
        )
    samples = [cache.records[i] for i in range(len(config.prompts))]
    return Generations(samples, cache.path, len(done), time.perf_counter() - start)


def selection_scores(
    proxy_scores: np.ndarray,
    uncertainty_weight: float,
    statistics: tuple[Sequence[float], Sequence[float]] | None = None,
) -> dict[str, np.ndarray]:
    """What picks the reply: the proxy, or for an ensemble (M, S) the first member and each aggregation.

    ``statistics`` (each member's reward mean and std) puts the members on one scale before they are
    aggregated; None aggregates the raw scores. The first member alone is kept in its own units.
    """
    if proxy_scores.shape[0] == 1:
        return {"proxy": proxy_scores[0]}
    members = torch.from_numpy(proxy_scores.T.copy())
    if statistics is not None:
        members = standardise_members(members, *statistics)
    rules = {"proxy 1 (single)": proxy_scores[0]}
    for method in ("mean", "wco", "uwo"):
        rules[f"ensemble {method}"] = aggregate_ensemble(members, method, uncertainty_weight)[0].numpy()
    return rules


@dataclass
class Curve:
    """Per N: mean over prompts of the selecting score and of the gold score, and the standard error
    over prompts of the gold gain over N=1 (what the plot shows; the N=1 level is the same for every rule)."""

    proxy: list[float]
    gold: list[float]
    gold_gain_se: list[float]


def overopt_curves(rules: dict[str, np.ndarray], gold: np.ndarray, per_prompt: int, max_n: int) -> dict[str, Curve]:
    """Best-of-N curves of every selection rule, averaged over prompts (scores are prompt-major)."""
    gold_rows = gold.reshape(-1, per_prompt)
    curves = {}
    for name, scores in {**rules, ORACLE: gold}.items():
        rows = scores.reshape(-1, per_prompt)
        own = np.stack([best_of_n_curve(r, r, max_n) for r in rows])
        judged = np.stack([best_of_n_curve(r, g, max_n) for r, g in zip(rows, gold_rows, strict=True)])
        gains = judged - judged[:, :1]
        se = gains.std(axis=0, ddof=1) / np.sqrt(len(rows)) if len(rows) > 1 else np.zeros(max_n)
        curves[name] = Curve(own.mean(0).tolist(), judged.mean(0).tolist(), se.tolist())
    return curves


def sample_bon_kl(per_prompt: int, max_n: int) -> list[float]:
    """KL, to the uniform distribution over a prompt's n samples, of the distribution the unbiased
    best-of-N estimator puts on them (``best_of_n_weights``): log n at N = n, above KL_bon(N)."""
    values = []
    for big_n in range(1, max_n + 1):
        w = best_of_n_weights(per_prompt, big_n)
        w = w[w > 0]
        values.append(max(float(np.sum(w * np.log(w * per_prompt))), 0.0))
    return values


def kl_optimal_curve(scores: np.ndarray, gold: np.ndarray, per_prompt: int, max_n: int) -> dict[str, list[float]]:
    """The KL-constrained optimum (Yang et al. 2024) on each prompt's samples, beside best-of-N.

    Per prompt, the base is the empirical distribution of its n replies and the optimum the tilt
    φ_λ ∝ exp(λ·score) (``kl_optimal.solve_tilt``), averaged over prompts: ``proxy`` and ``gold`` at
    KL_bon(N), the x-axis of the best-of-N curves; ``proxy_at_sample_kl`` at the KL the best-of-N
    estimator's own weights have on these samples (``sample_kl``), where optimality guarantees it is
    at least best-of-N's proxy value on every prompt.
    """
    rows, gold_rows = scores.reshape(-1, per_prompt), gold.reshape(-1, per_prompt)
    own, judged, lambdas = [], [], []
    for r, g in zip(rows, gold_rows, strict=True):
        proxy_values, gold_values, lam = tilt_curve(r, g, max_n)
        own.append(proxy_values)
        judged.append(gold_values)
        lambdas.append(lam)
    own_arr, judged_arr = np.stack(own), np.stack(judged)
    gains = judged_arr - judged_arr[:, :1]
    se = gains.std(axis=0, ddof=1) / np.sqrt(len(rows)) if len(rows) > 1 else np.zeros(max_n)
    sample_kl = sample_bon_kl(per_prompt, max_n)
    matched = np.array([[solve_tilt(r, kl).expected_reward for kl in sample_kl] for r in rows])
    return {
        "proxy": own_arr.mean(0).tolist(),
        "gold": judged_arr.mean(0).tolist(),
        "gold_gain_se": se.tolist(),
        "lambda_median": [float(v) if np.isfinite(v) else None for v in np.median(np.stack(lambdas), axis=0)],
        "sample_kl": sample_kl,
        "proxy_at_sample_kl": matched.mean(0).tolist(),
    }


def within_prompt_correlation(scores: np.ndarray, gold: np.ndarray, per_prompt: int) -> float | None:
    """Mean over prompts of Pearson's r between a selection score and gold among one prompt's replies:
    what best-of-N can exploit (differences between prompts do not matter to it)."""
    values = []
    for r, g in zip(scores.reshape(-1, per_prompt), gold.reshape(-1, per_prompt), strict=True):
        if r.std() > 0 and g.std() > 0:
            values.append(float(np.corrcoef(r, g)[0, 1]))
    return float(np.mean(values)) if values else None


@dataclass(frozen=True)
class _Saved:
    """What ``models.ensemble.member_statistics`` reads of a member (its info), once the model is freed."""

    info: RewardModelInfo


def score_all(
    paths: Sequence[str], prompts: list[Prompt], replies: list[str], config: OveroptConfig
) -> tuple[np.ndarray, list[RewardModelInfo]]:
    """(models, replies) rewards and each model's saved info, one model loaded at a time."""
    from rewardlab.models.reward_model import RewardModel

    rows, infos = [], []
    for path in paths:
        model = RewardModel.from_pretrained(path)
        rows.append(model.score(prompts, replies, precision=config.precision, progress=config.progress))
        infos.append(model.info)
        del model
    return np.array(rows, dtype=np.float64), infos


def proxy_statistics(infos: Sequence[RewardModelInfo], names: Sequence[str]) -> tuple[list[float], list[float]] | None:
    """The proxies' (reward_mean, reward_std) to standardise an ensemble with, by the rule of
    ``RewardEnsemble``: None, with a ``RawEnsembleWarning``, when one proxy has none; None for a
    single proxy (nothing to aggregate)."""
    from rewardlab.models.ensemble import member_statistics

    if len(infos) < 2:
        return None
    return member_statistics([_Saved(info) for info in infos], names)  # type: ignore[arg-type]


def run_overopt(config: OveroptConfig) -> dict[str, object]:
    """Sample (or read back), score, and return the study as a JSON-ready dict."""
    config.check()
    generations = generate(config)
    n = config.sampling.n
    prompts = [p for p in config.prompts for _ in range(n)]
    replies = [s.text for samples in generations.samples for s in samples]
    start = time.perf_counter()
    scores, infos = score_all([config.gold, *config.proxies], prompts, replies, config)
    scoring_seconds = time.perf_counter() - start
    statistics = proxy_statistics(infos[1:], config.proxies)
    rules = selection_scores(scores[1:], config.uncertainty_weight, statistics)
    curves = overopt_curves(rules, scores[0], n, n)
    flat = [s for samples in generations.samples for s in samples]
    first_rule = next(iter(rules))
    return {
        "policy": config.policy,
        "gold": config.gold,
        "proxies": list(config.proxies),
        "prompts": len(config.prompts),
        "sampling": config.sampling.as_dict(),
        "precision": resolve_precision(config.precision),
        "uncertainty_weight": config.uncertainty_weight,
        "ensemble_normalisation": None
        if len(config.proxies) < 2
        else {
            "standardised": statistics is not None,
            "reward_means": statistics[0] if statistics is not None else None,
            "reward_stds": statistics[1] if statistics is not None else None,
        },
        "n_values": list(range(1, n + 1)),
        "kl": [best_of_n_kl(k) for k in range(1, n + 1)],
        "curves": {name: curve.__dict__ for name, curve in curves.items()},
        "kl_optimal": {"rule": first_rule, **kl_optimal_curve(rules[first_rule], scores[0], n, n)},
        "replies": {
            "count": len(flat),
            "mean_tokens": float(np.mean([s.tokens for s in flat])),
            "finished_fraction": float(np.mean([s.finished for s in flat])),
            "empty": sum(not s.text for s in flat),
        },
        "within_prompt_correlation_with_gold": {
            name: within_prompt_correlation(values, scores[0], n) for name, values in rules.items()
        },
        "cache": {
            "path": str(generations.cache_path),
            "reused_prompts": generations.reused_prompts,
            "generation_seconds": round(generations.seconds, 1),
        },
        "scoring_seconds": round(scoring_seconds, 1),
    }
