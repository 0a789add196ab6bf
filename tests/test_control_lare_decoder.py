"""LaRe's MLP decoder (r̂ = g_θ(z), trained on the return-decomposition loss) and its self-verification step
(the LM shown its code's sandbox result, or error, confirms or corrects it), on gridworlds with a known reward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardlab.control.language import LMGenerate, run_function, transition_descriptions
from rewardlab.control.lare import (
    NONLINEAR_FACTORS_CODE,
    TRUE_FACTORS_CODE,
    Episodes,
    LaReConfig,
    MLPDecoder,
    decompose,
    lare,
    mlp_return_decomposition,
    sample_episodes,
    sample_transitions,
)
from rewardlab.control.mdp import DELIVERY_WEIGHTS, gridworld
from rewardlab.runs.config import ConfigError

W = np.array(DELIVERY_WEIGHTS)
GRID = ["S.c.", ".m#.", "..mG", "X..."]
"""A 4×4 delivery grid: the shortest way to G (5 steps) can take the coin; mud and a hazard nearby."""
FAST = MLPDecoder(steps=500)
BUGGY_CODE = "def factors(t):\n    return [1.0, t['coin']]\n"
STILL_BUGGY_CODE = "def factors(t):\n    return [t['mud']]\n"


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fenced(code: str) -> str:
    return f"Here are the factors:\n```python\n{code}```\n"


def scripted(writes: str, verifies: str):
    """An LM stand-in: ``writes`` to LaRe's factor prompt, ``verifies`` to the self-verification prompt; it keeps
    the verification prompts it was asked."""
    asked: list[str] = []

    def generate(prompt: str) -> str:
        if prompt.startswith("You wrote this Python function"):
            asked.append(prompt)
            return verifies
        return writes

    generate.verify_prompts = asked  # type: ignore[attr-defined]
    return generate


def factors_of(code: str, mdp):
    outcomes = transition_descriptions(mdp)
    return outcomes, run_function(code, "factors", outcomes.descriptions, vector=True).values


# -- the MLP decoder --------------------------------------------------------------------------------------------


def test_mlp_decomposition_by_hand():
    """The linear test's case with one-hot factors: episode 1 takes outcome 0 once, episode 2 outcomes 0 and 1;
    R = (2, 5) → g(outcome 0) = 2, g(outcome 1) = 5 − 2 = 3, the only zero of L(θ) = (g₀ − 2)² + (g₀ + g₁ − 5)²."""
    episodes = Episodes(np.array([[0, -1], [0, 1]]), np.array([2.0, 5.0]))
    rewards, theta = mlp_return_decomposition(np.eye(2), episodes, MLPDecoder(hidden=8, steps=800))
    np.testing.assert_allclose(rewards, [2.0, 3.0], atol=1e-4)
    assert theta.shape == (2 * 8 + 8 + 8 * 8 + 8 + 8 + 1,)


def test_mlp_decoder_is_reproducible_from_its_seed():
    episodes = Episodes(np.array([[0, -1], [0, 1], [1, 1]]), np.array([2.0, 5.0, 7.0]))
    first = mlp_return_decomposition(np.eye(2), episodes, MLPDecoder(hidden=4, steps=20, seed=1))[1]
    again = mlp_return_decomposition(np.eye(2), episodes, MLPDecoder(hidden=4, steps=20, seed=1))[1]
    other = mlp_return_decomposition(np.eye(2), episodes, MLPDecoder(hidden=4, steps=20, seed=2))[1]
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_mlp_decoder_recovers_a_reward_that_is_nonlinear_in_the_factors():
    """With z₁ = goal − hazard and z₂ = coin − mud the reward is −1 + 50·z₁ + 3·z₂ − 2·z₂²: no linear g can give
    coin +1 and mud −5 at once, so the linear fit is off by units and plans badly; the MLP fits the square."""
    mdp = gridworld(GRID)
    outcomes, z = factors_of(NONLINEAR_FACTORS_CODE, mdp)
    episodes = sample_episodes(mdp, outcomes, W, 40, 20, np.random.default_rng(0))
    linear = decompose(mdp, outcomes, z, episodes, W)
    mlp = decompose(mdp, outcomes, z, episodes, W, decoder=FAST)
    assert linear.reward_rmse > 1.0 and linear.normalized < 0.9
    assert mlp.reward_rmse < 0.05 and mlp.reward_rmse < linear.reward_rmse / 20 and mlp.normalized == 1.0


def test_mlp_decoder_recovers_a_product_of_factors():
    """Factors a = entered a coin or mud, b = entered mud or the goal (plus goal, hazard): the mud and coin
    rewards ride on a·b (mud only) and a − a·b (coin only); a·b is not in their span, the MLP's product is."""
    code = (
        "def factors(t):\n    e = t['entered']\n"
        "    return [e in ('coin', 'mud'), e in ('mud', 'goal'), e == 'goal', e == 'hazard']\n"
    )
    mdp = gridworld(GRID)
    outcomes, z = factors_of(code, mdp)
    episodes = sample_episodes(mdp, outcomes, W, 40, 20, np.random.default_rng(0))
    linear = decompose(mdp, outcomes, z, episodes, W)
    mlp = decompose(mdp, outcomes, z, episodes, W, decoder=FAST)
    assert linear.reward_rmse > 0.5 and mlp.reward_rmse < linear.reward_rmse / 10


def test_lare_with_the_mlp_decoder_and_the_true_factors_reaches_normalized_return_one():
    mdp = gridworld(GRID)
    config = LaReConfig(candidates=1, decoder="mlp", mlp_steps=500)
    out = lare(mdp, scripted(fenced(TRUE_FACTORS_CODE), ""), W, config)
    assert out.lare.normalized == 1.0 and out.lare.reward_rmse < 0.05
    assert out.raw.normalized < 1.0


def test_bad_decoder_settings_are_listed_at_once():
    with pytest.raises(ConfigError) as error:
        LaReConfig(decoder="tree", hidden=0, mlp_lr=0.0, verify_samples=0).check()
    text = str(error.value)
    assert "decoder must be one of linear, mlp" in text and "hidden" in text and "mlp_lr" in text
    assert "verify_samples" in text


# -- self-verification ------------------------------------------------------------------------------------------


def test_a_buggy_candidate_is_corrected_by_the_verifier_and_then_runs():
    mdp = gridworld(GRID)
    lm = scripted(fenced(BUGGY_CODE), fenced(TRUE_FACTORS_CODE))
    out = lare(mdp, lm, W, LaReConfig(candidates=1, ridge=0.0, verify=True))
    candidate = out.candidates[0]
    assert candidate.verification.outcome == "corrected" and candidate.error is None
    assert candidate.verification.error_before.startswith("failed: KeyError")
    assert candidate.code.strip() == TRUE_FACTORS_CODE.strip() and candidate.dims == 5
    assert out.ran_before_verification == 0 and out.ran_fraction == 1.0
    assert out.chosen == 0 and out.lare.reward_rmse < 1e-9
    (prompt,) = lm.verify_prompts
    assert "KeyError" in prompt and "t['coin']" in prompt and "It did not run: failed: KeyError" in prompt


def test_a_correction_that_does_not_run_leaves_the_original_candidate():
    """Original: the true factors (they run); the verifier's 'fix' crashes, so the true factors stay and are
    decomposed; the prompt showed the sandbox's factors of sample moves, e.g. entering the goal → [1, 0, 0, 1, 0]."""
    mdp = gridworld(GRID)
    lm = scripted(fenced(TRUE_FACTORS_CODE), fenced(STILL_BUGGY_CODE))
    out = lare(mdp, lm, W, LaReConfig(candidates=1, ridge=0.0, verify=True))
    candidate = out.candidates[0]
    assert candidate.verification.outcome == "rejected: failed: KeyError: 'mud'"
    assert candidate.code.strip() == TRUE_FACTORS_CODE.strip() and candidate.error is None
    assert out.ran_before_verification == 1 and out.lare.reward_rmse < 1e-9
    (prompt,) = lm.verify_prompts
    assert "'entered': 'goal'" in prompt and "-> [1.0, 0.0, 0.0, 1.0, 0.0]" in prompt


def test_a_broken_candidate_with_a_broken_correction_stays_discarded_with_its_first_error():
    mdp = gridworld(GRID)
    out = lare(mdp, scripted(fenced(BUGGY_CODE), fenced(STILL_BUGGY_CODE)), W, LaReConfig(candidates=2, verify=True))
    assert [c.error for c in out.candidates] == ["failed: KeyError: 'coin'"] * 2
    assert out.lare is None and out.ran_fraction == 0.0 and out.raw is not None


def test_a_reply_without_code_confirms_and_a_reply_without_a_function_is_shown_to_the_verifier():
    mdp = gridworld(GRID)
    out = lare(mdp, scripted(fenced(TRUE_FACTORS_CODE), "It is correct."), W, LaReConfig(candidates=1, verify=True))
    assert out.candidates[0].verification.outcome == "confirmed" and out.candidates[0].error is None
    lm = scripted("I would count the coins.", fenced(TRUE_FACTORS_CODE))
    out = lare(mdp, lm, W, LaReConfig(candidates=1, verify=True))
    assert out.candidates[0].verification.outcome == "corrected" and out.lare is not None
    assert (
        "I would count the coins." in lm.verify_prompts[0] and "defines no function factors(t)" in lm.verify_prompts[0]
    )


def test_without_verify_the_lm_is_asked_once_per_candidate():
    mdp = gridworld(GRID)
    lm = scripted(fenced(BUGGY_CODE), fenced(TRUE_FACTORS_CODE))
    out = lare(mdp, lm, W, LaReConfig(candidates=2))
    assert lm.verify_prompts == [] and all(c.verification is None for c in out.candidates)
    assert out.ran_before_verification == 0 == out.ran_fraction


def test_sample_transitions_show_each_kind_of_cell_entered_first():
    mdp = gridworld(GRID)
    outcomes = transition_descriptions(mdp)
    rows = sample_transitions(outcomes, 5)
    assert {outcomes.descriptions[k]["entered"] for k in rows} == {"empty", "coin", "mud", "goal", "hazard"}
    assert len(sample_transitions(outcomes, 7)) == 7 and len(sample_transitions(outcomes, 2)) == 2


def test_verification_through_a_real_tiny_causal_lm(tiny_decoder_dir):
    """The tiny random decoder writes no code, nor any in verification: each candidate is asked twice and stays
    discarded with the first reason."""
    mdp = gridworld(GRID)
    lm = LMGenerate.load(tiny_decoder_dir, max_new_tokens=8, temperature=1.0, seed=3)
    out = lare(mdp, lm, W, LaReConfig(candidates=2, verify=True))
    assert lm.calls == 4 and out.lare is None
    assert all(c.verification.outcome == "no correction" for c in out.candidates)
    assert all(c.error == "the reply defines no function factors(t)" for c in out.candidates)
