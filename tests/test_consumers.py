"""A saved reward model folder gives `rewardlab score`'s reward (1e-5, fp32) in each consumer's own code.

Consumers that install here run as they are: transformers' text-classification pipeline, TRL's
``GRPOTrainer`` reward path (``_calculate_rewards`` with the folder as ``reward_funcs``) and TRL's
PPO ``get_reward``, RewardBench's ``prepare_dialogue_from_tokenizer``. OpenRLHF cannot be installed
beside transformers 5: its loader and forward (``openrlhf/models/model.py``,
``get_llm_for_sequence_regression`` and ``_get_reward_model``) are transcribed below, reading the
same fields. RewardBench's pipeline moves its inputs to CUDA, so on a CPU its call is copied.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizer,
    pipeline,
)

from rewardlab.models.consumer_fields import is_plain_template
from rewardlab.models.export import export_model, export_problem
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.sequences import pad_batch
from rewardlab.rewards.transforms import RewardStats, apply_transform

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

MAX_LENGTH = 64
QUESTIONS = ["How do I bake bread?", "What is the capital of France?", "Say hello."]
REPLIES = ["Mix flour, water, salt and yeast.", "Paris.", "Hi, how can I help you today?"]


def _saved(backbone: Path, folder: Path) -> Path:
    model = RewardModel.from_backbone(str(backbone), max_length=MAX_LENGTH)
    head = model.model.classifier if hasattr(model.model, "classifier") else model.model.score
    head.weight.data *= 50  # spread the rewards: near-equal scores would hide a wrong token
    model.info.reward_mean, model.info.reward_std = 0.5, 4.0
    return model.save_pretrained(folder)


@pytest.fixture(scope="module")
def encoder_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    """A BERT reward model in rewardlab's ``plain`` format, like the default MiniLM one."""
    return _saved(tiny_encoder_dir, tmp_path_factory.mktemp("encoder") / "model")


@pytest.fixture(scope="module")
def decoder_dir(tiny_decoder_dir, tmp_path_factory) -> Path:
    """A Llama reward model in the ``chat`` format (ChatML template), like a SmolLM2 one."""
    return _saved(tiny_decoder_dir, tmp_path_factory.mktemp("decoder") / "model")


def conversations() -> list[tuple[dict, ...]]:
    return [({"role": "user", "content": q},) for q in QUESTIONS]


def rewardlab_scores(folder: Path, prompts: list, replies: list[str]) -> list[float]:
    return RewardModel.from_pretrained(folder).score(prompts, replies, precision="fp32")


def test_the_folder_holds_what_consumers_read(encoder_dir, decoder_dir, tiny_encoder_dir):
    for folder, text_format in ((encoder_dir, "plain"), (decoder_dir, "chat")):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        config = AutoConfig.from_pretrained(folder)
        assert tokenizer.truncation_side == "left" and tokenizer.model_max_length == MAX_LENGTH
        assert config.id2label == {0: "reward"} and (config.mean, config.std) == (0.5, 4.0)
        assert config.rewardlab["text_format"] == text_format
        assert is_plain_template(tokenizer.chat_template) == (text_format == "plain")
        assert (folder / "README.md").is_file()
    # a saved plain model used as a backbone stays plain: its template is rewardlab's, not a chat model's
    assert RewardModel.from_backbone(str(encoder_dir)).info.text_format == "plain"
    assert RewardModel.from_backbone(str(tiny_encoder_dir)).info.text_format == "plain"


@pytest.mark.parametrize("which", ["encoder_dir", "decoder_dir"])
def test_transformers_pipeline_scores_like_rewardlab(which, request):
    """``pipeline("text-classification")`` on the folder, raw logits, with a text longer than max_length."""
    folder = request.getfixturevalue(which)
    model = RewardModel.from_pretrained(folder)
    replies = [*REPLIES, "words and more words " * 40 + "the end"]
    prompts = [*QUESTIONS, "a long one"]
    texts = [model.format(p, r) for p, r in zip(prompts, replies, strict=True)]
    plain = model.info.text_format == "plain"
    classify = pipeline("text-classification", model=str(folder), device="cpu")
    results = classify(texts, function_to_apply="none", truncation=True, add_special_tokens=plain)
    assert [r["label"] for r in results] == ["reward"] * len(texts)
    expected = model.score(prompts, replies, precision="fp32")
    assert [r["score"] for r in results] == pytest.approx(expected, abs=1e-5)
    assert len(set(expected)) == len(expected)


@pytest.fixture(scope="module")
def grpo_trainer_factory(tiny_decoder_dir, tmp_path_factory):
    """TRL's GRPOTrainer with a tiny Llama policy and a saved folder as ``reward_funcs`` (a string)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    def build(reward_dir: Path) -> GRPOTrainer:
        dataset = Dataset.from_dict({"prompt": [list(c) for c in conversations()]})
        config = GRPOConfig(
            output_dir=str(tmp_path_factory.mktemp("grpo")),
            per_device_train_batch_size=2,
            num_generations=2,
            max_completion_length=8,
            report_to="none",
            use_cpu=True,
            bf16=False,
            save_strategy="no",
        )
        return GRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(tiny_decoder_dir),
            reward_funcs=str(reward_dir),
            args=config,
            train_dataset=dataset,
            processing_class=AutoTokenizer.from_pretrained(tiny_decoder_dir),
        )

    return build


@pytest.mark.parametrize("which", ["encoder_dir", "decoder_dir"])
def test_trl_grpo_reward_model_folder_scores_like_rewardlab(which, request, grpo_trainer_factory):
    """TRL loads the folder itself and renders conversational prompts with the saved chat template
    (``_calculate_rewards``): the rewards it computes are rewardlab's."""
    folder = request.getfixturevalue(which)
    trainer = grpo_trainer_factory(folder)
    prompts = [list(c) for c in conversations()]
    completions = [[{"role": "assistant", "content": r}] for r in REPLIES]
    inputs = [{"prompt": p} for p in prompts]
    rewards = trainer._calculate_rewards(inputs, prompts, completions, [[0]] * len(prompts))
    expected = rewardlab_scores(folder, conversations(), REPLIES)
    assert rewards[:, 0].tolist() == pytest.approx(expected, abs=1e-5)


def test_trl_ppo_get_reward_reads_the_decoder_score_head(decoder_dir):
    """TRL's PPO utilities (``trl.experimental.utils.get_reward``) run ``model.score`` on the backbone's
    hidden states and read the last non-padding token: a decoder folder gives rewardlab's reward."""
    from trl.experimental.utils import get_reward

    model = RewardModel.from_pretrained(decoder_dir)
    ids = model.encode(conversations(), REPLIES).ids
    pad = model.tokenizer.pad_token_id
    query_responses, _ = pad_batch(ids, pad)
    loaded = AutoModelForSequenceClassification.from_pretrained(decoder_dir).eval()
    with torch.inference_mode():
        _, rewards, _ = get_reward(loaded, query_responses, pad, context_length=0)
    assert rewards.tolist() == pytest.approx(model.score(conversations(), REPLIES, precision="fp32"), abs=1e-5)


def openrlhf_reward_model(folder: Path, normalize_reward: bool) -> nn.Module:
    """OpenRLHF's ``get_llm_for_sequence_regression(folder, "reward", value_head_prefix="score", bf16=False)``.

    Transcribed from ``openrlhf/models/model.py``: the base class is ``AutoModel``'s for the config,
    a bias-free ``nn.Linear(hidden, 1)`` is the value head, ``mean``/``std`` buffers come from
    ``config.mean``/``config.std``. ``post_init`` and the buffers' second setting are for transformers 5.
    """
    config = AutoConfig.from_pretrained(folder)
    config.normalize_reward = normalize_reward
    base_class = AutoModel._model_mapping[type(config)]

    class OpenRLHFRewardModel(base_class.__base__):
        def __init__(self, config):
            super().__init__(config)
            setattr(self, self.base_model_prefix, base_class(config))
            self.score = nn.Linear(config.hidden_size, 1, bias=False)
            self.normalize_reward = config.normalize_reward
            self.register_buffer("mean", torch.zeros(1), persistent=False)
            self.register_buffer("std", torch.ones(1), persistent=False)
            if hasattr(config, "mean"):
                self.mean[0] = config.mean
                self.std[0] = config.std
            self.post_init()

        def forward(self, input_ids, attention_mask):
            position_ids = attention_mask.long().cumsum(-1) - 1
            position_ids.masked_fill_(attention_mask == 0, 1)
            outputs = getattr(self, self.base_model_prefix)(
                input_ids, attention_mask=attention_mask, position_ids=position_ids
            )
            values = self.score(outputs["last_hidden_state"]).squeeze(-1)
            eos_indices = attention_mask.size(1) - 1 - attention_mask.long().fliplr().argmax(dim=1, keepdim=True)
            reward = values.gather(dim=1, index=eos_indices).squeeze(1)
            if not self.training and self.normalize_reward:
                reward = (reward - self.mean) / self.std
            return reward

    model, loading = OpenRLHFRewardModel.from_pretrained(folder, config=config, output_loading_info=True)
    assert not loading["missing_keys"] and not loading["unexpected_keys"], loading
    # transformers 5 builds the model on the meta device and materialises non-persistent buffers empty;
    # OpenRLHF runs on transformers 4, where __init__'s values stand: set them again from the same fields
    if hasattr(config, "mean"):
        model.mean[0], model.std[0] = config.mean, config.std
    return model.eval()


def left_pad(ids: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """As OpenRLHF's tokenizer pads (``padding_side="left"``)."""
    width = max(len(s) for s in ids)
    input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in ids])
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in ids])
    return input_ids, mask


def test_openrlhf_loader_reads_the_decoder_folder_and_its_normalisation(decoder_dir, tmp_path):
    exported = export_model(decoder_dir, "openrlhf", tmp_path / "openrlhf")
    model = RewardModel.from_pretrained(exported)
    ids = model.encode(conversations(), REPLIES).ids
    input_ids, mask = left_pad(ids, model.tokenizer.pad_token_id)
    expected = model.score(conversations(), REPLIES, precision="fp32")
    with torch.inference_mode():
        raw = openrlhf_reward_model(exported, normalize_reward=False)(input_ids, mask)
        normalized = openrlhf_reward_model(exported, normalize_reward=True)(input_ids, mask)
    assert raw.tolist() == pytest.approx(expected, abs=1e-5)
    stats = RewardStats(model.info.reward_mean, model.info.reward_std)
    assert normalized.tolist() == pytest.approx(apply_transform("normalize", expected, stats=stats), abs=1e-5)


def test_openrlhf_export_refuses_an_encoder_with_why(encoder_dir, tmp_path):
    """OpenRLHF reads its value head at the last token, BERT's classifier the pooled [CLS]: refused."""
    assert "encoder" in export_problem(RewardModel.from_pretrained(encoder_dir), "openrlhf")
    with pytest.raises(ValueError, match="cannot export to openrlhf: an encoder"):
        export_model(encoder_dir, "openrlhf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def rewardbench_prepare_dialogue() -> Any:
    """RewardBench's own ``prepare_dialogue_from_tokenizer``, compiled from the installed package's
    ``utils.py`` (that module imports fastchat, which is not installed here; this function does not use it)."""
    spec = importlib.util.find_spec("rewardbench")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("rewardbench is not installed")
    source = (Path(next(iter(spec.submodule_search_locations))) / "utils.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    name = "prepare_dialogue_from_tokenizer"
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    namespace: dict[str, Any] = {"Dict": dict, "Any": Any, "PreTrainedTokenizer": PreTrainedTokenizer}
    exec(compile(ast.Module([function], []), "rewardbench/utils.py", "exec"), namespace)
    return namespace[name]


@pytest.mark.parametrize("which", ["encoder_dir", "decoder_dir"])
def test_rewardbench_export_scores_like_rewardlab(which, request, tmp_path):
    """RewardBench renders each pair with the folder's chat template, then its pipeline tokenises with the
    special tokens added, pads on the left, and reads the logits (``rewardbench/models/pipeline.py``; copied
    here because that pipeline moves its inputs to CUDA). An encoder runs one text at a time (left padding
    would move its [CLS]); a decoder in a padded batch."""
    exported = export_model(request.getfixturevalue(which), "rewardbench", tmp_path / "rewardbench")
    prepare = rewardbench_prepare_dialogue()
    tokenizer = AutoTokenizer.from_pretrained(exported)
    model = AutoModelForSequenceClassification.from_pretrained(exported).eval()
    texts = [
        prepare({"prompt": q, "chosen": r, "rejected": "no"}, tokenizer)["text_chosen"]
        for q, r in zip(QUESTIONS, REPLIES, strict=True)
    ]
    tokenizer.padding_side = "left"  # rewardbench.py, before building the pipeline
    batch = 1 if which == "encoder_dir" else len(texts)
    scores = []
    for start in range(0, len(texts), batch):
        rows = texts[start : start + batch]
        inputs = tokenizer(rows, truncation=False, max_length=512, padding=True, return_tensors="pt")
        with torch.no_grad():
            scores += model(**inputs).logits[:, 0].tolist()
    assert scores == pytest.approx(rewardlab_scores(exported, conversations(), REPLIES), abs=1e-5)


def test_export_targets_and_errors(encoder_dir, tmp_path):
    trl = export_model(encoder_dir, "trl", tmp_path / "trl")
    assert AutoTokenizer.from_pretrained(trl).chat_template == AutoTokenizer.from_pretrained(encoder_dir).chat_template
    assert "## Exported for TRL" in (trl / "README.md").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="unknown target 'vllm'; choose one of trl, openrlhf, rewardbench"):
        export_model(encoder_dir, "vllm", tmp_path / "x")
    with pytest.raises(ValueError, match="is the model folder itself"):
        export_model(encoder_dir, "trl", encoder_dir)
