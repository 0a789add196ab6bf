"""The bar fine-tuning must clear: a frozen MiniLM with a linear Bradley-Terry head.

Embeds every (prompt, reply) of the embedded HH-RLHF pairs with the frozen all-MiniLM-L6-v2
(mean pooling, as the sentence-transformers model was trained), fits a linear reward w·e on the
training split by maximising the Bradley-Terry likelihood of the labels (L2-regularised, strength
chosen on the validation split), and reports held-out accuracy on the same test split `make run`
uses, with a 95 % bootstrap interval.

    python benchmarks/frozen_baseline.py
"""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel

from rewardlab.data import load_preferences, split_pairs
from rewardlab.evaluate.metrics import bootstrap_ci, pairwise_correct
from rewardlab.models.backbones import minilm_dir
from rewardlab.models.reward_model import RewardModel
from rewardlab.models.sequences import pad_batch
from rewardlab.training.probe import fit_linear_bt
from rewardlab.tuning import tune_cpu

tune_cpu()  # rewardlab's CPU settings for the whole benchmark, as its own runs have them


@torch.inference_mode()
def embed(encoder: torch.nn.Module, ids: list[list[int]], batch: int = 64) -> torch.Tensor:
    rows = []
    for start in range(0, len(ids), batch):
        input_ids, mask = pad_batch(ids[start : start + batch], 0)
        hidden = encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        rows.append((hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))
    return F.normalize(torch.cat(rows), dim=-1)


def pair_features(encoder: torch.nn.Module, tokens: RewardModel, pairs) -> torch.Tensor:
    prompts = [p.prompt for p in pairs]
    chosen = embed(encoder, tokens.encode(prompts, [p.chosen for p in pairs]).ids)
    rejected = embed(encoder, tokens.encode(prompts, [p.rejected for p in pairs]).ids)
    return chosen - rejected


def main() -> None:
    torch.set_num_threads(2)
    splits = split_pairs(load_preferences().pairs)
    tokens = RewardModel.from_backbone("minilm", max_length=256)
    encoder = AutoModel.from_pretrained(minilm_dir()).eval()
    train, valid, test = (pair_features(encoder, tokens, s) for s in (splits.train, splits.validation, splits.test))

    def accuracy(w: torch.Tensor, diffs: torch.Tensor) -> np.ndarray:
        gaps = (diffs @ w).numpy()
        return pairwise_correct(gaps, np.zeros_like(gaps))

    results = {}
    for l2 in (1e-4, 1e-3, 1e-2, 1e-1):
        w = fit_linear_bt(train, torch.ones(len(train)), l2)
        results[l2] = (float(accuracy(w, valid).mean()), w)
    best = max(results, key=lambda k: results[k][0])
    correct = accuracy(results[best][1], test)
    low, high = bootstrap_ci(correct)
    print(
        json.dumps(
            {
                "l2": best,
                "validation_accuracy": results[best][0],
                "test_accuracy": float(correct.mean()),
                "ci95": [low, high],
                "n_test": len(correct),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
