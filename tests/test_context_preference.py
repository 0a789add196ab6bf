"""Context-aware preference modelling (Pitis et al. 2024): a row's context is read (its own field or a
``--columns`` map) and stated before the prompt; a reward model trained with it learns a preference
that flips with the context, which the same model trained without it cannot; and the
context-marginal preference is the mixture Σ_c P(c|x)·σ(r(x,c,y1) − r(x,c,y2))."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

import rewardlab
from rewardlab.data import ColumnMap, DataError, load_preferences
from rewardlab.rewards.context import context_marginal_logp, context_marginal_preference

# -- reading contexts -----------------------------------------------------------------------------------


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_context_field_and_column_map_put_the_context_before_the_prompt(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Which pet?", "context": "The user loves cats.", "chosen": "A cat.", "rejected": "A dog."},
        {"prompt": "Which pet?", "chosen": "A dog.", "rejected": "A cat."},
        {
            "prompt": "Hi",
            "persona": "A child.",
            "response_a": "Hello!",
            "response_b": "Greetings.",
            "preference": "a-is-better",
        },
        {"prompt": "Pick", "context": "Short", "responses": ["x", "yy", "zzz"], "ranking": [0, 1, 2]},
        {
            "prompt": [{"role": "user", "content": "Hi"}],
            "context": "Formal.",
            "chosen": [{"role": "assistant", "content": "Good day."}],
            "rejected": [{"role": "assistant", "content": "yo"}],
        },
    ]
    loaded = load_preferences(_write(tmp_path / "rows.jsonl", rows))
    first, second, graded, *kwise, chat = loaded.pairs
    assert first.prompt == "Context: The user loves cats.\n\nWhich pet?" and first.context == "The user loves cats."
    assert second.prompt == "Which pet?" and second.context is None
    assert graded.prompt == "Hi" and graded.context is None  # "persona" is no context unless mapped
    assert all(p.prompt == "Context: Short\n\nPick" and p.context == "Short" for p in kwise) and len(kwise) == 3
    assert loaded.rankings[0].prompt == "Context: Short\n\nPick" and loaded.rankings[0].context == "Short"
    assert chat.prompt == ({"role": "system", "content": "Context: Formal."}, {"role": "user", "content": "Hi"})
    mapped = load_preferences(tmp_path / "rows.jsonl", columns=ColumnMap.parse("context=persona"))
    assert mapped.pairs[2].prompt == "Context: A child.\n\nHi" and mapped.pairs[0].prompt == "Which pet?"


def test_a_context_that_is_not_text_names_the_row_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", [{"prompt": "p", "context": ["a"], "chosen": "x", "rejected": "y"}])
    with pytest.raises(DataError, match=r'bad.jsonl:1: field "context": is a list of 1 items \(expected text\)'):
        load_preferences(path)


# -- the mixture ----------------------------------------------------------------------------------------


def test_marginal_preference_exact_values() -> None:
    """Two contexts with P(c|x) = (0.25, 0.75) and reward gaps (ln 3, −ln 3): σ(ln 3) = 3/4, σ(−ln 3) = 1/4,
    so P(y1 ≻ y2 | x) = 0.25·0.75 + 0.75·0.25 = 0.375. Equal weights on opposite gaps give exactly ½:
    what a model that cannot see the context should learn."""
    gap = math.log(3)
    probs = torch.tensor([[0.25, 0.75], [0.5, 0.5]], dtype=torch.float64)
    chosen = torch.tensor([[gap, -gap], [gap, -gap]], dtype=torch.float64)
    out = context_marginal_preference(probs, chosen, torch.zeros_like(chosen))
    assert out.tolist() == pytest.approx([0.375, 0.5], abs=1e-12)
    one_context = context_marginal_logp(torch.zeros(1, 1, dtype=torch.float64), chosen[:1, :1], torch.zeros(1, 1))
    assert one_context.item() == pytest.approx(math.log(0.75), abs=1e-12)  # a single context is plain Bradley-Terry


def test_marginal_preference_matches_brute_force_sampling() -> None:
    """Draw a context c ~ P(c|x), then the preference y1 ≻ y2 with probability σ(Δ_c): the frequency of
    y1 winning converges to the mixture (to within 4 standard errors of 200,000 draws)."""
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(5, generator=g, dtype=torch.float64), dim=0)
    chosen, rejected = (
        torch.randn(5, generator=g, dtype=torch.float64),
        torch.randn(5, generator=g, dtype=torch.float64),
    )
    exact = context_marginal_preference(probs, chosen, rejected).item()
    by_loop = sum(
        p * 1 / (1 + math.exp(-(c - r)))
        for p, c, r in zip(probs.tolist(), chosen.tolist(), rejected.tolist(), strict=True)
    )
    assert exact == pytest.approx(by_loop, abs=1e-12)
    n = 200_000
    contexts = torch.multinomial(probs, n, replacement=True, generator=g)
    wins = torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(chosen - rejected)[contexts]
    assert abs(wins.double().mean().item() - exact) < 4 * math.sqrt(exact * (1 - exact) / n)


def test_marginal_preference_refuses_bad_inputs() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        context_marginal_preference(torch.tensor([0.5, 0.6]), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="same shape"):
        context_marginal_logp(torch.zeros(2), torch.zeros(3), torch.zeros(3))


# -- a preference that flips with the context -----------------------------------------------------------

FILLER = ["please", "maybe", "really", "today", "you", "should", "get", "a", "nice", "small"]


def flipping_pairs(n: int, seed: int = 0) -> list[dict]:
    """True reward r(x, c, y) = 1 if y names the pet the context says the user loves, else 0: every
    reply pair is preferred one way under one context and the other way under the other."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        loved = rng.choice(["cats", "dogs"])
        cat, dog = (" ".join([*rng.sample(FILLER, 3), pet, *rng.sample(FILLER, 3)]) for pet in ("cat", "dog"))
        chosen, rejected = (cat, dog) if loved == "cats" else (dog, cat)
        rows.append(
            {
                "prompt": f"which pet {i % 5}",
                "context": f"the user loves {loved}",
                "chosen": chosen,
                "rejected": rejected,
            }
        )
    return rows


def test_context_aware_model_learns_the_flip_that_a_context_blind_one_cannot(
    tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    """The same tiny encoder, data and Bradley-Terry training, with the context read (default) or not
    (``context`` mapped to a field no row has): held-out accuracy ≥ 0.9 against a 95 % interval
    that holds ½, since without the context each reply pair is preferred both ways equally often."""
    data = _write(tmp_path / "pets.jsonl", flipping_pairs(400))
    quick = {"precision": "fp32", "progress": False, "num_threads": 1, "max_steps": 150, "batch_size": 16}
    quick |= {"eval_every": 1000, "optim.lr": 3e-3, "model.max_length": 32}
    results = {}
    for name, columns in (("aware", None), ("blind", "context=no_such_field")):
        extra = {"data.columns": columns} if columns else {}
        results[name] = rewardlab.train(
            data=str(data), backbone=str(tiny_encoder_dir), output_dir=tmp_path / name, **quick, **extra
        ).test.overall
    assert results["aware"].accuracy >= 0.9, results
    assert results["blind"].ci_low <= 0.5 <= results["blind"].ci_high, results
