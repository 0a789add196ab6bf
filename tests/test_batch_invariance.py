"""A text's reward is the same bit for bit at every row of a scoring pass and in any company.

The reward head (``hidden @ w + b``, one output) was a BLAS matrix product that handles rows in
blocks of four and the remainder otherwise: at width 320 (6 rows a pass) MiniLM's reward of a
text was one value at rows 0-3 and another, in the last bits, at row 4. The head is now an
elementwise product and a sum (``row_invariant_linear``), which reduces each row alone.
"""

from __future__ import annotations

import pytest
import torch

from rewardlab.models.reward_model import RewardModel, row_invariant_linear
from rewardlab.models.sequences import scoring_tiles

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "and", "then", "it", "rests"]


def text(seed: int, words: int) -> str:
    return " ".join(WORDS[(seed * 7 + i * 3) % len(WORDS)] + ("s" if (i + seed) % 5 == 0 else "") for i in range(words))


def rewards_at_every_row(model: RewardModel, words: int, precision: str, rows: int) -> tuple[list[float], float]:
    """The target text's output at each row of a ``rows``-row pass, with other texts of its width
    around it (a different set at each row), and alone."""
    target = model.encode(["q"], [text(0, words)]).ids[0]
    width = scoring_tiles([len(target)])[0].width
    company = [model.encode(["q"], [text(s, words - s % 7)]).ids[0] for s in range(1, 60)]
    company = [c for c in company if scoring_tiles([len(c)])[0].width == width]
    assert len(company) >= rows
    seen = []
    for row in range(rows):
        seqs = [company[(row + j) % len(company)] for j in range(rows)]
        seqs[row] = target
        seen.append(model.outputs_ids(seqs, precision=precision, tile_tokens=rows * width)[row].item())
    alone = model.outputs_ids([target], precision=precision, tile_tokens=rows * width)[0].item()
    return seen, alone


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("backbone", ["tiny_encoder_dir", "tiny_decoder_dir"])
def test_tiny_models_score_a_text_the_same_at_every_row(backbone, precision, request):
    model = RewardModel.from_backbone(str(request.getfixturevalue(backbone)), max_length=64)
    head = getattr(model.model, "classifier", None) or model.model.score
    head.weight.data *= 100  # rewards far from zero, so that a last-bit difference shows
    seen, alone = rewards_at_every_row(model, 40, precision, rows=8)
    assert seen == [alone] * 8


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_minilm_scores_a_text_the_same_at_every_row(precision):
    """The real all-MiniLM-L6-v2 at 6 rows a pass (the shape where row 4 differed)."""
    torch.manual_seed(0)
    model = RewardModel.from_backbone("minilm", max_length=128)
    seen, alone = rewards_at_every_row(model, 60, precision, rows=6)
    assert seen == [alone] * 6


@pytest.mark.parametrize("outputs", [1, 3])
def test_the_head_computes_each_row_alone(outputs):
    torch.manual_seed(0)
    weight, bias = torch.randn(outputs, 384), torch.randn(outputs)
    for rows in (*range(1, 20), 64, 100):
        hidden = torch.randn(rows, 1, 384)
        together = row_invariant_linear(hidden, weight, bias)
        alone = torch.cat([row_invariant_linear(hidden[r : r + 1], weight, bias) for r in range(rows)])
        assert torch.equal(together, alone), rows
        assert torch.allclose(together, torch.nn.functional.linear(hidden, weight, bias), atol=1e-4)
