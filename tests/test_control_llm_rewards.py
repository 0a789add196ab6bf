"""Rewards shaped by a language model for tabular control: ICPL (reward code rewritten from preferences), LaRe
(LM-written latent factors + return decomposition) and ONI (LM caption labels → intrinsic reward).

The LM is a scripted ``generate`` function (a real function returning fixed text: the LM's stand-in), or the tiny
decoder built from a config; one slow test runs SmolLM2 for real. LM-written code runs in the real sandbox.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardlab.control.icpl import (
    TRUE_REWARD_CODE,
    Candidate,
    ICPLConfig,
    code_reward_table,
    icpl,
    reward_prompt,
    simulated_choice,
)
from rewardlab.control.language import (
    LMGenerate,
    as_generate,
    expected_table,
    extract_function,
    run_function,
    transition_descriptions,
)
from rewardlab.control.lare import (
    TRUE_FACTORS_CODE,
    LaReConfig,
    decompose,
    lare,
    return_decomposition,
    sample_episodes,
)
from rewardlab.control.mdp import DELIVERY_WEIGHTS, gridworld
from rewardlab.control.oni import CAPTIONS, ONIConfig, bag_of_words, oni, parse_label, train_caption_classifier
from rewardlab.runs.config import ConfigError

W = np.array(DELIVERY_WEIGHTS)
GRID = ["S.c.", ".m#.", "..mG", "X..."]
"""A 4×4 delivery grid: the shortest way to G (5 steps) can take the coin; mud and a hazard nearby."""


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Value iteration is a thousand tiny einsums: a second thread only waits for the first."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


BAD_REWARD_CODE = 'def reward(t):\n    return 10.0 if t["entered"] == "hazard" else 0.0\n'
LOOPING_CODE = "def reward(t):\n    while True:\n        pass\n"


def fenced(code: str) -> str:
    return f"Here is the reward:\n```python\n{code}```\nIt rewards the goal."


def scripted(replies: list[str]):
    """An LM stand-in that gives ``replies`` in turn (cycling), and keeps the prompts it was asked."""
    prompts: list[str] = []

    def generate(prompt: str) -> str:
        prompts.append(prompt)
        return replies[(len(prompts) - 1) % len(replies)]

    generate.prompts = prompts  # type: ignore[attr-defined]
    return generate


# -- shared: descriptions, code extraction, sandbox runs ------------------------------------------------------


def test_the_true_code_gives_the_true_reward_table_even_on_a_slippery_grid():
    """r(s, a) = Σ_s' P(s'|s, a)·R(t(s, a, s')) reproduces φ(s, a)·w: the gridworld's features are the same
    expectation of the entered cell's one-hot, so the two agree exactly, slip included."""
    mdp = gridworld(GRID, slip=0.2)
    table, error = code_reward_table(mdp, transition_descriptions(mdp), TRUE_REWARD_CODE, timeout_s=10)
    assert error is None
    np.testing.assert_allclose(table, mdp.reward(W), atol=1e-12)


def test_expected_table_weights_each_outcome_by_its_probability():
    """A 1×3 corridor ``S.G`` with slip 0.3: from the start, 'right' goes right with 0.7 and each other way
    with 0.1 (up, down, left all bump: stays put). Values 1 per move that moved, 0 otherwise → r(0, right)
    = 0.7, r(0, left) = 0.1 (the slip to the right), r(0, up) = 0.1."""
    mdp = gridworld(["S.G"], slip=0.3)
    outcomes = transition_descriptions(mdp)
    moved = np.array([float(d["moved"]) for d in outcomes.descriptions])
    table = expected_table(mdp, outcomes, moved)
    assert table[0, 3] == pytest.approx(0.7) and table[0, 2] == pytest.approx(0.1) and table[0, 0] == pytest.approx(0.1)
    assert np.all(table[2] == 0)  # the goal is terminal: nothing is described from it


def test_extract_function_finds_fenced_unfenced_and_unclosed_code():
    assert extract_function(fenced(TRUE_REWARD_CODE), "reward") == TRUE_REWARD_CODE.strip("\n")
    assert extract_function("Sure.\ndef reward(t):\n    return 1\n```", "reward") == "def reward(t):\n    return 1"
    assert extract_function("```python\ndef reward(t):\n    return 2\n", "reward") == "def reward(t):\n    return 2"
    assert extract_function("```python\ndef score(t):\n    return 2\n```", "reward") is None


def test_code_that_fails_loops_or_returns_non_numbers_is_discarded_with_the_reason():
    rows = [{"entered": "coin"}, {"entered": "mud"}]
    assert run_function(LOOPING_CODE, "reward", rows, timeout_s=1).error == "timed out after 1 s"
    words = run_function("def reward(t):\n    return 'a lot'\n", "reward", rows)
    assert words.values is None and "expected finite numbers" in words.error
    crash = run_function("def reward(t):\n    return t['missing']\n", "reward", rows)
    assert crash.error.startswith("failed: KeyError")
    ragged = run_function(
        "def factors(t):\n    return [1] * (2 if t['entered'] == 'coin' else 3)\n", "factors", rows, vector=True
    )
    assert "lengths [2, 3]" in ragged.error
    escape = run_function("import os\ndef reward(t):\n    return len(os.listdir('/home'))\n", "reward", rows)
    assert escape.error is not None and "PermissionError" in escape.error


# -- ICPL ------------------------------------------------------------------------------------------------------


def test_icpl_with_an_lm_that_writes_the_true_reward_reaches_normalized_return_one():
    mdp = gridworld(GRID)
    out = icpl(mdp, scripted([fenced(TRUE_REWARD_CODE)]), W, ICPLConfig(iterations=2, candidates=1))
    assert out.best_per_iteration == [1.0, 1.0] and out.ran_fraction == 1.0
    assert (
        out.iterations[0].candidates[0].behaviour
        == "Its agent reached a goal after 5 steps (1 coin, 0 mud cells entered)."
    )


def test_icpl_records_a_looping_candidate_as_timed_out_and_prefers_the_true_one():
    mdp = gridworld(GRID)
    lm = scripted([fenced(BAD_REWARD_CODE), fenced(LOOPING_CODE), fenced(TRUE_REWARD_CODE), "I cannot write code."])
    out = icpl(mdp, lm, W, ICPLConfig(iterations=1, candidates=4, timeout_s=1))
    errors = [c.error for c in out.iterations[0].candidates]
    assert errors == [None, "timed out after 1 s", None, "the reply defines no function reward(t)"]
    assert out.ran_fraction == 0.5
    first = out.iterations[0]
    assert (first.preferred, first.rejected) == (2, 0)
    # the hazard-seeker does worse than acting at random
    assert first.candidates[0].normalized < 0 < first.candidates[2].normalized == 1.0


def test_the_second_prompt_shows_the_first_iterations_preferred_and_rejected_code():
    mdp = gridworld(GRID)
    lm = scripted([fenced(BAD_REWARD_CODE), fenced(TRUE_REWARD_CODE)])
    out = icpl(mdp, lm, W, ICPLConfig(iterations=2, candidates=2))
    second = out.iterations[1].prompt
    assert out.iterations[0].prompt == reward_prompt(mdp) and "best behaviour" not in out.iterations[0].prompt
    best, worst = second.index("gave the best behaviour"), second.index("gave the worst behaviour")
    assert second.index(TRUE_REWARD_CODE.strip()) > best and second.index(BAD_REWARD_CODE.strip()) > worst > best
    assert lm.prompts[2] == second


def test_the_simulated_human_is_a_plackett_luce_choice_on_true_returns():
    """With returns (0, log 3) and noise 1, P(best = 1) = e^{log 3} / (1 + e^{log 3}) = 3/4; the worst is then the
    other one. Without noise the choice is the argmax and argmin."""
    assert simulated_choice([3.0, 7.0, -1.0], 0.0, np.random.default_rng(0)) == (1, 2)
    rng = np.random.default_rng(0)
    picks = [simulated_choice([0.0, np.log(3.0)], 1.0, rng) for _ in range(4000)]
    assert np.mean([best == 1 for best, _ in picks]) == pytest.approx(0.75, abs=0.025)
    assert all(best != worst for best, worst in picks)


def test_the_prompt_of_a_second_iteration_without_a_rejected_candidate_shows_only_the_preferred():
    mdp = gridworld(GRID)
    only = Candidate("", TRUE_REWARD_CODE.strip(), behaviour="Its agent reached a goal after 5 steps.")
    text = reward_prompt(mdp, preferred=only)
    assert "best behaviour" in text and "worst behaviour" not in text and "after 5 steps" in text


def test_bad_settings_are_listed_at_once():
    with pytest.raises(ConfigError) as caught:
        ICPLConfig(iterations=0, candidates=0, timeout_s=0).check()
    assert len(caught.value.problems) == 3


def test_icpl_runs_a_real_tiny_causal_lm_through_the_project_generation(tiny_decoder_dir):
    """The tiny random decoder writes no usable code: every candidate is discarded, with a reason, and the
    replies are reproducible from the seed (a fresh generator gives the same sequence)."""
    mdp = gridworld(GRID)
    lm = LMGenerate.load(tiny_decoder_dir, max_new_tokens=8, temperature=1.0, seed=3)
    out = icpl(mdp, lm, W, ICPLConfig(iterations=1, candidates=2))
    replies = [c.reply for c in out.iterations[0].candidates]
    assert out.best_per_iteration == [None] and all(c.error for c in out.iterations[0].candidates)
    again = LMGenerate(lm.lm, max_new_tokens=8, temperature=1.0, seed=3)
    assert [again(out.iterations[0].prompt) for _ in range(2)] == replies


def test_as_generate_takes_a_callable_as_it_is_and_loads_a_model_folder(tiny_decoder_dir):
    def fixed(prompt: str) -> str:
        return "def reward(t):\n    return 0\n"

    assert as_generate(fixed) is fixed
    loaded = as_generate(tiny_decoder_dir, max_new_tokens=4)
    assert isinstance(loaded, LMGenerate) and loaded.max_new_tokens == 4 and isinstance(loaded("hi"), str)


# -- LaRe -------------------------------------------------------------------------------------------------------


def test_return_decomposition_by_hand():
    """Episode 1 holds one step of factor (1, 0), episode 2 one of (1, 0) and one of (0, 1): Z = [[1, 0], [1, 1]],
    R = (2, 5) → θ = (2, 3): the second factor's steps are worth 5 − 2."""
    np.testing.assert_allclose(
        return_decomposition(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([2.0, 5.0])), [2.0, 3.0]
    )


def test_lare_with_the_true_factors_recovers_the_per_step_reward_exactly():
    """Only episode totals are observed, yet least squares on the summed true features (full column rank over 40
    random episodes) gives θ = w and r̂ = r at every transition; the one-hot (s, a) decomposition of the same
    episodes does not (60 unknowns, many transitions never taken)."""
    mdp = gridworld(GRID)
    out = lare(mdp, scripted([fenced(TRUE_FACTORS_CODE)]), W, LaReConfig(candidates=1, ridge=0.0))
    np.testing.assert_allclose(out.lare.theta, W, atol=1e-9)
    assert out.lare.reward_rmse < 1e-9 and out.lare.normalized == 1.0
    assert out.raw.reward_rmse > 1.0 and out.raw.normalized < 1.0


def test_lare_discards_broken_factor_code_and_chooses_by_held_out_fit():
    """Candidates: code that crashes, a constant factor (fits only the mean return), the true factors."""
    mdp = gridworld(GRID)
    constant = "def factors(t):\n    return [1.0]\n"
    crash = "def factors(t):\n    return [t['coin']]\n"
    lm = scripted([fenced(crash), fenced(constant), fenced(TRUE_FACTORS_CODE)])
    out = lare(mdp, lm, W, LaReConfig(candidates=3, ridge=0.0))
    assert out.candidates[0].error.startswith("failed: KeyError") and out.ran_fraction == pytest.approx(2 / 3)
    assert [c.dims for c in out.candidates] == [0, 1, 5] and out.chosen == 2


def test_decompose_with_slip_is_still_exact_for_linear_factors():
    """With slip the episode's return sums r(s, a) = E_s'[φ]·w, not the outcome's own one-hot; the expected
    per-outcome features (mdp.features[s, a]) keep the fit exact."""
    mdp = gridworld(GRID, slip=0.1)
    outcomes = transition_descriptions(mdp)
    episodes = sample_episodes(mdp, outcomes, W, 60, 20, np.random.default_rng(1))
    features = mdp.features[outcomes.index[:, 0], outcomes.index[:, 1]]
    fitted = decompose(mdp, outcomes, features, episodes, W)
    np.testing.assert_allclose(fitted.theta, W, atol=1e-8)


# -- ONI --------------------------------------------------------------------------------------------------------


def helpful_if(*kinds: str):
    """A scripted labeller: yes for the captions of ``kinds``, no for the rest."""
    wanted = {CAPTIONS[k] for k in kinds}
    return scripted_labeller(wanted)


def scripted_labeller(wanted: set[str]):
    def generate(prompt: str) -> str:
        caption = prompt.split('"')[1]
        return "Yes, it helps." if caption in wanted else "No."

    return generate


def test_parse_label():
    assert [parse_label(r) for r in ("Yes.", "no, because", " YES", "Maybe", "")] == [1, 0, 1, None, None]


def test_the_classifier_learns_the_labels_and_generalises_by_words():
    vocabulary, eta = train_caption_classifier(["You pick up a gold coin.", "You wade into sticky mud."], [1, 0])
    captions = ["You pick up a gold coin.", "You wade into sticky mud.", "A gold bar lies here."]
    logits = bag_of_words(captions, vocabulary) @ eta
    assert logits[0] > 0 > logits[1] and logits[2] > 0  # "gold" was a helpful word


def test_oni_intrinsic_reward_is_one_exactly_on_the_transitions_the_labeller_finds_helpful():
    """Labeller: coin and goal helpful. r_int(s, a) = 1[the cell entered holds a coin or the goal]; planning on
    sparse + 0.3·r_int picks up the coin on the way (normalized return 1) where the sparse goal/hazard reward
    alone does not care for coins or mud; at β = 5 the agent circles the coin forever instead of finishing."""
    mdp = gridworld(GRID)
    out = oni(mdp, helpful_if("coin", "goal"), W, ONIConfig(beta=0.3))
    outcomes = transition_descriptions(mdp)
    helpful = [float(d["entered"] in ("coin", "goal") and d["moved"]) for d in outcomes.descriptions]
    expected = expected_table(mdp, outcomes, np.array(helpful))
    np.testing.assert_array_equal(out.intrinsic, expected)
    assert set(out.labels.values()) == {0, 1} and out.helpful[CAPTIONS["coin"]] and not out.helpful[CAPTIONS["mud"]]
    assert out.shaped_normalized == pytest.approx(1.0) and out.sparse_normalized < 0.95
    hacked = oni(mdp, helpful_if("coin", "goal"), W, ONIConfig(beta=5.0))
    assert hacked.shaped_normalized < 0 < hacked.sparse_normalized


# -- SmolLM2 for real -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_writes_one_candidate_that_icpl_runs_or_discards_with_a_reason():
    mdp = gridworld(GRID)
    lm = LMGenerate.load("smollm2", max_new_tokens=48, temperature=0.7)
    out = icpl(mdp, lm, W, ICPLConfig(iterations=1, candidates=1))
    candidate = out.iterations[0].candidates[0]
    assert candidate.reply.strip()
    assert (candidate.error is None and candidate.normalized is not None) or candidate.error
