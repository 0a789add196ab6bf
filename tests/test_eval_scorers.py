"""Every scorer on tiny models, against values computed by hand from the models' own logits.

What must hold: a plain Hugging Face classifier scores like a rewardlab one; the implicit reward
is β·(log π − log π_ref) of the reply tokens; CDR and FLR are their log-probability differences;
the judge's two orders are averaged so that swapping A and B gives exactly the opposite log-odds;
the remote scorer's rewards over real HTTP equal local scoring; a compare-only scorer ranks
replies by its mean log-odds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from rewardlab.data.records import PreferencePair
from rewardlab.evaluate import scorers
from rewardlab.evaluate.judge import JudgeScorer, answer_token_ids
from rewardlab.evaluate.likelihood_scorers import (
    DensityRatioScorer,
    FollowUpScorer,
    ImplicitRewardScorer,
    follow_up_texts,
)
from rewardlab.evaluate.pairwise import evaluate_pairs
from rewardlab.evaluate.reference_scorers import ReferenceScorer, read_references
from rewardlab.evaluate.remote import RemoteScorer, reward_url
from rewardlab.evaluate.scorers import (
    SCORERS,
    RewardModelScorer,
    ScorerKind,
    ScorerSpec,
    build_scorer,
    grouped_scores,
    pair_scores,
    register_scorer,
    scorer_key,
    scorer_names,
)
from rewardlab.evaluate.text_overlap import sentence_bleu
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import RewardModel
from rewardlab.registry import Registry
from rewardlab.serve.asgi import running_server
from rewardlab.serve.server import ServeConfig, create_app

torch.set_num_threads(1)

PROMPTS = ["What is the capital of France?", "How do I bake bread?", "hello"]
REPLIES = ["The capital of France is Paris.", "Mix flour, water, salt and yeast.", "Hi, how can I help you today?"]


def perturbed_copy(source: Path, target: Path, seed: int) -> Path:
    """The tiny decoder with noise added to every weight: a fresh initialisation predicts nearly
    uniform tokens, which would hide a wrong position or token behind tiny differences."""
    model = AutoModelForCausalLM.from_pretrained(source)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def policy_dir(tiny_decoder_dir, tmp_path_factory) -> Path:
    return perturbed_copy(tiny_decoder_dir, tmp_path_factory.mktemp("policy"), seed=0)


@pytest.fixture(scope="module")
def reference_dir(tiny_decoder_dir, tmp_path_factory) -> Path:
    return perturbed_copy(tiny_decoder_dir, tmp_path_factory.mktemp("reference"), seed=1)


def hand_reply_logp(model_dir: Path, messages: list[dict], reply: str) -> float:
    """Σ log π(reply tokens | prompt) from one unpadded forward pass, rendered with the chat template."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    head = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": reply}], tokenize=False)
    return continuation_logp(model, tokenizer, head, full[len(head) :])


def continuation_logp(model, tokenizer, prefix: str, continuation: str) -> float:
    p = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    c = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logps = model(input_ids=torch.tensor([p + c])).logits[0].log_softmax(-1)
    return sum(logps[len(p) - 1 + j, token].item() for j, token in enumerate(c))


# -- reward models --------------------------------------------------------------------------------------


def test_a_plain_transformers_classifier_is_a_scorer(tiny_encoder_dir, tiny_decoder_dir, tmp_path):
    """One-label classifiers saved by transformers alone (no rewardlab config, no pad id in the
    decoder's config) load and score exactly as a direct forward pass does."""
    torch.manual_seed(0)
    encoder = AutoModelForSequenceClassification.from_pretrained(tiny_encoder_dir, num_labels=1)
    encoder.save_pretrained(tmp_path / "enc")
    AutoTokenizer.from_pretrained(tiny_encoder_dir).save_pretrained(tmp_path / "enc")
    scorer = RewardModelScorer(RewardModel.from_pretrained(tmp_path / "enc"), "fp32")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "enc")
    encoder.eval()
    for prompt, reply, got in zip(PROMPTS, REPLIES, scorer.score(PROMPTS, REPLIES), strict=True):
        with torch.no_grad():
            expected = encoder(**tokenizer(f"{prompt}\n{reply}", return_tensors="pt")).logits.item()
        assert got == pytest.approx(expected, abs=1e-5)

    decoder = AutoModelForSequenceClassification.from_pretrained(tiny_decoder_dir, num_labels=1)
    decoder.config.pad_token_id = None
    decoder.save_pretrained(tmp_path / "dec")
    AutoTokenizer.from_pretrained(tiny_decoder_dir).save_pretrained(tmp_path / "dec")
    loaded = RewardModel.from_pretrained(tmp_path / "dec")
    assert loaded.info.text_format == "chat" and loaded.model.config.pad_token_id is not None
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "dec")
    decoder.eval()
    messages = [{"role": "user", "content": PROMPTS[0]}, {"role": "assistant", "content": REPLIES[0]}]
    ids = tokenizer(tokenizer.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = decoder.score(decoder.model(input_ids=torch.tensor([ids])).last_hidden_state)[0, -1].item()
    assert RewardModelScorer(loaded, "fp32").score(PROMPTS[:1], REPLIES[:1])[0] == pytest.approx(expected, abs=1e-5)


def test_evaluate_pairs_takes_a_scorer(tiny_encoder_dir):
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=64)
    model.model.classifier.weight.data *= 50
    pairs = [PreferencePair(p, r, r + " Anyway.") for p, r in zip(PROMPTS, REPLIES, strict=True)]
    direct = evaluate_pairs(model, pairs, precision="fp32")
    through = evaluate_pairs(RewardModelScorer(model, "fp32"), pairs)
    assert through.chosen_scores == direct.chosen_scores and through.rejected_scores == direct.rejected_scores
    assert through.overall == direct.overall and through.precision == "fp32"


# -- implicit reward, density ratio, follow-up likelihood ---------------------------------------------------


def test_implicit_reward_is_beta_times_the_log_ratio(policy_dir, reference_dir):
    scorer = ImplicitRewardScorer(CausalLM.from_pretrained(policy_dir), CausalLM.from_pretrained(reference_dir), 0.1)
    prompts = [
        *PROMPTS,
        (
            {"role": "user", "content": "Say hi."},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": "Again."},
        ),
    ]
    replies = [*REPLIES, "Hi again."]
    rewards = scorer.score(prompts, replies)
    for prompt, reply, reward in zip(prompts, replies, rewards, strict=True):
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        expected = 0.1 * (
            hand_reply_logp(policy_dir, messages, reply) - hand_reply_logp(reference_dir, messages, reply)
        )
        assert reward == pytest.approx(expected, abs=1e-5)
    assert len({round(r, 6) for r in rewards}) == len(rewards)  # nothing trivially equal


def test_reference_free_implicit_rewards(policy_dir):
    policy = CausalLM.from_pretrained(policy_dir)
    total = ImplicitRewardScorer(policy, None, 0.5, "sum").score(PROMPTS[:2], REPLIES[:2])
    mean = ImplicitRewardScorer(policy, None, 0.5, "mean").score(PROMPTS[:2], REPLIES[:2])
    for prompt, reply, s, m in zip(PROMPTS[:2], REPLIES[:2], total, mean, strict=True):
        logp = hand_reply_logp(policy_dir, [{"role": "user", "content": prompt}], reply)
        n_tokens = len(policy.encode_reply(prompt, reply)[1])  # the reply and its end-of-turn tokens
        assert s == pytest.approx(0.5 * logp, abs=1e-5) and m == pytest.approx(0.5 * logp / n_tokens, abs=1e-5)
    with pytest.raises(ValueError, match="needs a reference model"):
        ImplicitRewardScorer(policy, None)
    with pytest.raises(ValueError, match="takes no reference model"):
        ImplicitRewardScorer(policy, policy, mode="sum")


def test_density_ratio_reads_both_models_after_the_instruction(policy_dir, reference_dir):
    strong, weak = CausalLM.from_pretrained(policy_dir), CausalLM.from_pretrained(reference_dir)
    plain = DensityRatioScorer(strong, weak).score(PROMPTS, REPLIES)
    implicit = ImplicitRewardScorer(strong, weak, beta=1.0).score(PROMPTS, REPLIES)
    assert plain == pytest.approx(implicit, abs=1e-9)
    steered = DensityRatioScorer(strong, weak, instruction="Prefer short answers.").score(PROMPTS[:1], REPLIES[:1])
    messages = [{"role": "system", "content": "Prefer short answers."}, {"role": "user", "content": PROMPTS[0]}]
    expected = hand_reply_logp(policy_dir, messages, REPLIES[0]) - hand_reply_logp(reference_dir, messages, REPLIES[0])
    assert steered[0] == pytest.approx(expected, abs=1e-5) and steered[0] != pytest.approx(plain[0], abs=1e-4)


def test_follow_up_likelihood_by_hand(policy_dir):
    lm = CausalLM.from_pretrained(policy_dir)
    scorer = FollowUpScorer(lm, positive=("Thanks!",), negative=("Wrong.", "No."))
    rewards = scorer.score(PROMPTS[:2], REPLIES[:2])
    tokenizer, model = lm.tokenizer, lm.model
    for prompt, reply, reward in zip(PROMPTS[:2], REPLIES[:2], rewards, strict=True):
        conversation = [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]
        base = tokenizer.apply_chat_template(conversation, tokenize=False)
        logp = {}
        for follow_up in ("Thanks!", "Wrong.", "No."):
            header = "<|im_start|>user\n"
            logp[follow_up] = continuation_logp(model, tokenizer, base + header, f"{follow_up}<|im_end|>\n")
            assert follow_up_texts(lm, prompt, reply, follow_up) == (base + header, f"{follow_up}<|im_end|>\n")
        expected = logp["Thanks!"] - (logp["Wrong."] + logp["No."]) / 2
        assert reward == pytest.approx(expected, abs=1e-5)


# -- the judge ----------------------------------------------------------------------------------------


def test_judge_reads_answer_probabilities_and_removes_position_bias(policy_dir):
    lm = CausalLM.from_pretrained(policy_dir)
    judge = JudgeScorer(lm)
    a, b = REPLIES, ["No.", "I do not know.", "Go away."]
    forward, backward = judge.compare(PROMPTS, a, b), judge.compare(PROMPTS, b, a)
    assert forward == [-x for x in backward]  # exactly opposite log-odds
    for x, y in zip(forward, backward, strict=True):
        assert 1 / (1 + math.exp(-x)) + 1 / (1 + math.exp(-y)) == pytest.approx(1.0, abs=1e-12)
    # by hand: P(A) − P(B) at the generation prompt, each summed over the label's one-token spellings
    first = judge.order_logodds([(PROMPTS[0], a[0], b[0])])[0]
    second = judge.order_logodds([(PROMPTS[0], b[0], a[0])])[0]
    prefix = judge.verdict_prefix(PROMPTS[0], a[0], b[0])
    assert prefix.endswith("<|im_start|>assistant\n") and "[Response A]\nThe capital of France is Paris." in prefix
    with torch.no_grad():
        logps = lm.model(input_ids=torch.tensor([lm.tokens(prefix)])).logits[0, -1].log_softmax(-1)
    mass = [torch.logsumexp(logps[answer_token_ids(lm, label)], 0).item() for label in "AB"]
    assert first == pytest.approx(mass[0] - mass[1], abs=1e-5)
    assert forward[0] == pytest.approx((first - second) / 2, abs=1e-5)  # alone, not batched with the others
    assert abs(first + second) > 1e-4  # the model does favour a position; averaging removes it


def test_judge_with_a_principle_and_seeded_reasoning(policy_dir):
    lm = CausalLM.from_pretrained(policy_dir)
    judge = JudgeScorer(
        lm, principle="Prefer the shorter reply.", reasoning=True, reasoning_tokens=6, temperature=1.0, seed=7
    )
    prefix = judge.verdict_prefix(PROMPTS[0], REPLIES[0], "No.")
    assert "Judge by this principle:\nPrefer the shorter reply." in prefix and prefix.endswith("\n\nVerdict:")
    assert prefix == judge.verdict_prefix(PROMPTS[0], REPLIES[0], "No.")  # seeded: the same rationale again
    rationale = prefix.split("<|im_start|>assistant\n")[1].removesuffix("\n\nVerdict:")
    assert rationale  # the model wrote something before the verdict
    other = JudgeScorer(
        lm, principle="Prefer the shorter reply.", reasoning=True, reasoning_tokens=6, temperature=1.0, seed=8
    )
    assert other.verdict_prefix(PROMPTS[0], REPLIES[0], "No.") != prefix  # another seed, another rationale
    forward, backward = (
        judge.compare(PROMPTS[:2], REPLIES[:2], ["No.", "Yes."]),
        judge.compare(PROMPTS[:2], ["No.", "Yes."], REPLIES[:2]),
    )
    assert forward == [-x for x in backward]


# -- reference answers, remote endpoint -----------------------------------------------------------------------


def test_bleu_scorer_reads_references_from_the_data(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "p1", "chosen": "the cat sat on the mat", "rejected": "a dog", "gold": "the cat sat on the mat"},
        {"prompt": "p1", "chosen": "the cat", "rejected": "dog", "gold": ["a cat sat"]},
        {"prompt": "p2", "chosen": "x", "rejected": "y"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from rewardlab.data import ColumnMap

    references = read_references(path, ColumnMap.parse("reference=gold"))
    assert references == {"p1": ("the cat sat on the mat", "a cat sat")}
    scorer = ReferenceScorer("bleu", references)
    assert scorer.score(["p1"], ["the cat"]) == [sentence_bleu("the cat", references["p1"]).score]
    with pytest.raises(ValueError, match="no reference answer for the prompt 'p2'"):
        scorer.score(["p2"], ["x"])


def test_remote_scorer_equals_local_scoring_over_http(tiny_encoder_dir):
    model = RewardModel.from_backbone(str(tiny_encoder_dir), max_length=48)
    model.model.classifier.weight.data *= 50
    config = ServeConfig(max_batch_items=8, max_wait_ms=5, warmup=False)
    with running_server(create_app(model, config=config)) as base:
        for url in (base, f"{base}/get_reward"):
            remote = RemoteScorer(url, batch_size=2)
            assert remote.score(PROMPTS, REPLIES) == model.score(PROMPTS, REPLIES)
        pairs = [PreferencePair(p, r, "No.") for p, r in zip(PROMPTS, REPLIES, strict=True)]
        assert evaluate_pairs(RemoteScorer(base), pairs).chosen_scores == model.score(PROMPTS, REPLIES)
        with pytest.raises(ValueError, match="answered 404"):
            RemoteScorer(f"{base}/nowhere").score(PROMPTS, REPLIES)
    with pytest.raises(ValueError, match="is a conversation"):
        RemoteScorer(base).score([({"role": "user", "content": "hi"},)], ["hello"])
    with pytest.raises(ValueError, match=r"must be http\(s\)://"):
        reward_url("localhost:8000")


# -- generic helpers, spec ----------------------------------------------------------------------------------


class LengthJudge:
    """Compares only: the log-odds that a beats b is len(a) − len(b)."""

    precision = "exact"

    def compare(self, prompts, a, b):
        return [float(len(x) - len(y)) for x, y in zip(a, b, strict=True)]


def test_a_compare_only_scorer_in_pairs_and_groups():
    """Pairs get ±ℓ/2. Group ["aaa", "a", "aa"]: mean log-odds against the others:
    "aaa": (2 + 1)/2 = 1.5, "a": (−2 − 1)/2 = −1.5, "aa": (−1 + 1)/2 = 0."""
    chosen, rejected = pair_scores(LengthJudge(), [PreferencePair("p", "aaaa", "a")])
    assert (chosen, rejected) == ([1.5], [-1.5])
    assert grouped_scores(LengthJudge(), ["p", "q"], [["aaa", "a", "aa"], ["b", "bb"]]) == [
        [1.5, -1.5, 0.0],
        [-1.0, 1.0],
    ]
    with pytest.raises(TypeError, match="is not a scorer"):
        pair_scores(object(), [])  # type: ignore[arg-type]


def test_scorer_spec_lists_every_problem():
    errors = ScorerSpec(kind="implicit", beta=0).problems()
    assert errors == [
        "scorer implicit needs --policy",
        "scorer implicit needs --reference",
        "--beta must be positive (got 0)",
    ]
    assert ScorerSpec(kind="nope").problems()[0].startswith("unknown scorer 'nope'; registered scorers: bleu, cdr, flr")
    assert ScorerSpec(kind="judge", model="DIR").resolved().judge == "DIR"
    with pytest.raises(ValueError, match="scorer cdr needs --weak"):
        build_scorer(ScorerSpec(kind="cdr", model="DIR"))
    assert ScorerSpec(kind="implicit-sum", policy="P", reference="R").problems() == [
        "scorer implicit-sum is reference-free: drop --reference (or use --scorer implicit)"
    ]
    assert ScorerSpec(kind="bleu", model="M").problems() == [
        "scorer bleu takes no MODEL (it compares replies with reference answers)"
    ]
    assert ScorerSpec(reasoning_tokens=0, model="M").problems() == ["--reasoning-tokens must be at least 1 (got 0)"]


def test_scorer_kinds_are_registered_entries_that_name_and_describe_themselves():
    """Every kind carries its description; names forgive case and '_'; reports name the scorer by
    its options (the judge by its default model when none is given)."""
    names = scorer_names()
    assert names == sorted(names) and {"reward-model", "implicit", "judge", "rouge-l", "remote"} <= set(names)
    assert all(SCORERS.get(name).description for name in names)
    assert ScorerSpec(kind="ROUGE_L").resolved().kind == "rouge-l" and ScorerSpec(kind="rouge_l").needs_references
    assert not ScorerSpec(kind="judge").needs_references
    assert ScorerSpec(model="runs/rm").describe() == "runs/rm"
    assert ScorerSpec(kind="judge", reasoning=True).describe() == "judge(judge=smollm2, reasoning=True)"
    assert (
        ScorerSpec(kind="implicit", model="pol", reference="ref").describe()
        == "implicit(policy=pol, reference=ref, beta=0.1)"
    )
    with pytest.raises(ValueError, match="scorer name 'bleu' is already registered"):
        register_scorer(SCORERS.get("bleu"))


def test_a_registered_scorer_kind_is_built_by_name(monkeypatch):
    """A kind added with ``register_scorer`` is checked and built like the built-in ones (here in a
    registry of its own, so the kind does not outlive the test)."""
    monkeypatch.setattr(scorers, "SCORERS", Registry("scorer", normalise=scorer_key))

    class LengthScorer:
        def score(self, prompts, replies):
            return [float(len(r)) for r in replies]

    register_scorer(
        ScorerKind("length-test", "reply length in characters", lambda spec: LengthScorer(), needs=("url",))
    )
    assert ScorerSpec(kind="Length_Test").problems() == ["scorer length-test needs --url"]
    assert build_scorer(ScorerSpec(kind="length-test", url="unused")).score(["p"], ["abc"]) == [3.0]
    assert scorers.scorer_names() == ["length-test"]
