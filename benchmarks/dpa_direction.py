"""Does DPA's directional rejection-sampling fine-tuning move a policy toward the direction?

Wang et al. 2024, "Arithmetic Control of LLMs for Diverse User Preferences". One or more rounds of

    rewardlab sample-pairs --direction D ...   (N replies per prompt, ranked along D by a 2-attribute RM)
    rewardlab dpo --loss sft ...               (imitate the best-by-direction replies)

are run by the caller (see benchmarks/RESULTS.md); this script only measures: it samples fresh replies
to held-out prompts from each policy given, scores them with the multi-attribute reward model, and
prints, per policy, the mean reward along the unit direction (``combine_attributes``, angle-aware:
only the direction's angle matters), each attribute's mean, and the mean reply length in words,
with a 95 % bootstrap interval of the difference to the first policy (paired by prompt).

    python benchmarks/dpa_direction.py --reward-model RM --direction 1,-1 --data D.jsonl \\
        --policies smollm2 /tmp/dpa/sft1/policy --prompts 16 --samples 4
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from rewardlab.evaluate.data_split import load_pairs
from rewardlab.models.causal_lm import CausalLM
from rewardlab.models.reward_model import RewardModel
from rewardlab.policy.evaluation import distinct_prompts
from rewardlab.sampling.generation import SampleConfig, sample_replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reward-model", required=True)
    parser.add_argument("--direction", required=True, help="attribute weights, e.g. 1,-1")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--policies", nargs="+", required=True)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    direction = [float(x) for x in args.direction.split(",")]
    prompts = distinct_prompts(load_pairs(args.data, split=args.split), args.prompts)
    config = SampleConfig(n=args.samples, max_new_tokens=args.max_new_tokens, temperature=1.0, seed=args.seed)
    replies = {}
    for policy in args.policies:
        lm = CausalLM.from_pretrained(policy, precision="auto")
        replies[policy] = [[s.text for s in row] for row in sample_replies(lm, prompts, config, progress=True)]
        del lm
    model = RewardModel.from_pretrained(args.reward_model)
    results, per_prompt = {}, {}
    for policy, rows in replies.items():
        flat_prompts = [p for p, row in zip(prompts, rows, strict=True) for _ in row]
        flat = [text for row in rows for text in row]
        along = np.array(model.score(flat_prompts, flat, direction=direction)).reshape(len(prompts), -1)
        attributes = [
            np.mean(model.score(flat_prompts, flat, direction=[float(a == i) for a in range(len(direction))]))
            for i in range(len(direction))
        ]
        words = np.mean([len(t.split()) for t in flat])
        per_prompt[policy] = along.mean(axis=1)
        results[policy] = {"along_direction": float(along.mean()), "attributes": attributes, "words": float(words)}
    base = args.policies[0]
    rng = np.random.default_rng(0)
    for policy in args.policies[1:]:
        diff = per_prompt[policy] - per_prompt[base]
        boots = [rng.choice(diff, size=len(diff)).mean() for _ in range(2000)]
        results[policy]["difference"] = [float(diff.mean()), *np.percentile(boots, [2.5, 97.5]).tolist()]
    print(json.dumps({"direction": direction, "prompts": len(prompts), "samples": args.samples, **results}, indent=2))


if __name__ == "__main__":
    main()
