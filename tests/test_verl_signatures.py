"""verl calls a reward function in two shapes; both are called here exactly as verl calls them.

Per sample (``verl/workers/reward_manager/naive.py`` and the reward loop's ``run_single``)::

    compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...,
                  reward_router_address=..., reward_model_tokenizer=...)

with a custom function's ``reward_kwargs`` from the config added as keywords (``reward_model_path``
and whatever the user set). Batched (``verl/workers/reward_manager/batch.py``)::

    compute_score(data_sources=..., solution_strs=..., ground_truths=..., extra_infos=..., **reward_kwargs)

where ``data_sources`` and ``extra_infos`` are numpy object arrays (``DataProto.non_tensor_batch``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rewardlab.models.reward_model import RewardModel
from rewardlab.serve.integrations import verl_batch_compute_score, verl_compute_score

QUESTIONS = ["how are you?", "what is 2 + 2?", "name a colour"]
RESPONSES = ["fine, thank you", "4", "a deep shade of blue"]
REWARD_KWARGS = {"reward_model_path": "/models/rm", "overlong_penalty": None, "max_resp_len": 512}
"""What a verl config's ``reward_kwargs`` may hold; the function must take and ignore them."""


@pytest.fixture(scope="module")
def reward_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64)
    model.model.classifier.weight.data *= 50
    return model.save_pretrained(tmp_path_factory.mktemp("rm") / "model")


@pytest.fixture(scope="module")
def expected(reward_dir) -> list[float]:
    return RewardModel.from_pretrained(reward_dir).score(QUESTIONS, RESPONSES, precision="fp32")


def test_per_sample_call_as_the_reward_loop_makes_it(reward_dir, expected):
    compute_score = verl_compute_score(reward_dir, prompt_key="question", precision="fp32")
    scores = [
        compute_score(
            data_source="hh",
            solution_str=response,
            ground_truth=None,
            extra_info={"question": question, "index": i},
            reward_router_address=None,
            reward_model_tokenizer=None,
            **REWARD_KWARGS,
        )
        for i, (question, response) in enumerate(zip(QUESTIONS, RESPONSES, strict=True))
    ]
    assert all(isinstance(s, float) for s in scores)
    assert scores == pytest.approx(expected, abs=1e-5)
    # the naive manager's call, without the reward loop's keywords
    assert compute_score(
        data_source="hh", solution_str=RESPONSES[0], ground_truth="4", extra_info={"question": QUESTIONS[0]}
    ) == pytest.approx(expected[0], abs=1e-5)


def test_batched_call_as_the_batch_reward_manager_makes_it(reward_dir, expected):
    compute_score = verl_batch_compute_score(reward_dir, prompt_key="question", precision="fp32")
    extra_infos = np.array([{"question": q, "index": i} for i, q in enumerate(QUESTIONS)], dtype=object)
    scores = compute_score(
        data_sources=np.array(["hh"] * 3, dtype=object),
        solution_strs=RESPONSES,
        ground_truths=[None, "4", None],
        extra_infos=extra_infos,
        **REWARD_KWARGS,
    )
    assert isinstance(scores, list) and all(isinstance(s, float) for s in scores)
    assert scores == pytest.approx(expected, abs=1e-5)
    # one batch gives each response the reward it gets alone, bit for bit (fixed-shape scoring tiles)
    alone = verl_compute_score(reward_dir, prompt_key="question", precision="fp32")
    assert scores == [alone("hh", r, None, {"question": q}) for q, r in zip(QUESTIONS, RESPONSES, strict=True)]


def test_batched_call_without_prompts_and_its_errors(reward_dir):
    offline = RewardModel.from_pretrained(reward_dir)
    no_prompt = verl_batch_compute_score(reward_dir, prompt_key=None, precision="fp32")
    scores = no_prompt(np.array(["a", "b"], dtype=object), RESPONSES[:2], [None, None], np.array([None, None]))
    assert scores == pytest.approx(offline.score(["", ""], RESPONSES[:2], precision="fp32"), abs=1e-5)
    with_prompt = verl_batch_compute_score(reward_dir, prompt_key="question", precision="fp32")
    with pytest.raises(KeyError, match=r"extra_infos\[1\] has no 'question' \(keys: \['index'\]\)"):
        with_prompt(["hh", "hh"], RESPONSES[:2], [None, None], [{"question": "q"}, {"index": 1}])
    with pytest.raises(ValueError, match="2 solution_strs but 1 extra_infos"):
        with_prompt(["hh", "hh"], RESPONSES[:2], [None, None], [{"question": "q"}])
