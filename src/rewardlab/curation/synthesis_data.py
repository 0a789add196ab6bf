"""``rewardlab data synthesize`` as a function of files: read the prompts, synthesise, write the pairs.

The pairs are JSONL that ``rewardlab train`` and ``rewardlab dpo`` read, each row with a
``synthesis`` field (its provenance: round, candidates, every tool's score of both replies, margin,
agreement). The prompts still low in quality after the last round go to ``OUTPUT.low-quality.jsonl``
with their best pair; the counts (and a held-out reward model's accuracy on the pairs) go to
``OUTPUT.summary.json``; the three files are written together or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.atomic import write_files_atomic
from rewardlab.curation.synthesis import (
    Judgement,
    Sampler,
    SynthesisConfig,
    SynthesisOutput,
    held_out_accuracy,
    synthesize,
)
from rewardlab.data.loading import load_preferences
from rewardlab.data.prompts import ROLES
from rewardlab.data.readers import iter_rows
from rewardlab.data.records import DataError, Prompt
from rewardlab.data.schema import describe_value
from rewardlab.destinations import check_jsonl_destination
from rewardlab.evaluate.scorers import Comparer, Scorer


def read_prompt(value: Any, location: str) -> Prompt:
    """A row's ``prompt``: non-empty text, or a non-empty list of ``{"role", "content"}`` messages."""
    if isinstance(value, str):
        if not value.strip():
            raise DataError(location, "is empty (expected the prompt's text)", field="prompt")
        return value
    if not isinstance(value, list) or not value:
        raise DataError(location, f"is {describe_value(value)} (expected text or a list of messages)", "prompt")
    messages = []
    for index, message in enumerate(value):
        if (
            not isinstance(message, dict)
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise DataError(
                location,
                f'message [{index}] is {describe_value(message)} (expected {{"role": one of {", ".join(ROLES)}, '
                '"content": text})',
                "prompt",
            )
        messages.append({"role": message["role"], "content": message["content"]})
    return tuple(messages)


def read_prompts(source: str, limit: int | None = None) -> list[Prompt]:
    """The distinct prompts of ``source``, first ``limit`` of them: a file whose rows have a ``prompt``
    field, or any preference data ``rewardlab train`` reads (a file, a packaged name, 'default')."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1 (got {limit})")
    prompts: list[Prompt] = []
    seen: set[str] = set()
    if Path(source).is_file():
        rows = iter_rows(source)
        head = next(rows)
        if "prompt" in head[1]:
            for location, row in [head, *rows]:
                if "prompt" not in row:
                    raise DataError(location, "is missing (every row needs a prompt)", field="prompt")
                add_prompt(prompts, seen, read_prompt(row["prompt"], location))
                if len(prompts) == limit:
                    break
            return prompts
    for pair in load_preferences(source).pairs:
        add_prompt(prompts, seen, pair.prompt)
        if len(prompts) == limit:
            break
    return prompts


def add_prompt(prompts: list[Prompt], seen: set[str], prompt: Prompt) -> None:
    key = repr(prompt)
    if key not in seen:
        seen.add(key)
        prompts.append(prompt)


def pair_row(index: int, prompt: Prompt, judgement: Judgement, config: SynthesisConfig, policy: str) -> dict[str, Any]:
    """One output row: the pair ``rewardlab train`` reads, and its provenance under ``synthesis``."""
    c, r = judgement.chosen, judgement.rejected
    return {
        "id": f"synth-{index}",
        "prompt": prompt if isinstance(prompt, str) else list(prompt),
        "chosen": None if c is None else judgement.candidates[c].text,
        "rejected": None if r is None else judgement.candidates[r].text,
        "synthesis": {"policy": policy, "seed": config.seed, **judgement.provenance(config)},
    }


@dataclass
class SynthesisDataOutput:
    """The synthesis and the files written."""

    result: SynthesisOutput
    files: list[Path]

    def counts(self) -> dict[str, Any]:
        return self.result.counts()

    def summary_line(self) -> str:
        c = self.counts()
        return (
            f"{c['prompts']} prompts → {c['pairs']} pairs ({c['low_quality']} low quality,"
            f" {c['no_pair']} without a pair; {c['retried']} re-sampled)"
        )


def synthesize_data(
    prompts: str | Sequence[Prompt],
    sampler: Sampler,
    tools: Mapping[str, Scorer | Comparer],
    output: str | Path,
    config: SynthesisConfig,
    *,
    limit: int | None = None,
    policy: str = "",
    check: Scorer | Comparer | None = None,
    progress: bool = False,
) -> SynthesisDataOutput:
    """Synthesise pairs for ``prompts`` (a list, or where to read them: :func:`read_prompts`) and write them
    to ``output`` (see the module docstring)."""
    output = check_jsonl_destination(output)
    config.check()
    chosen = read_prompts(prompts, limit) if isinstance(prompts, str) else list(prompts)[:limit]
    result = synthesize(chosen, sampler, tools, config, progress=progress)
    rows = [
        pair_row(i, p, j, config, policy)
        for i, (p, j) in enumerate(zip(result.prompts, result.judgements, strict=True))
    ]
    low = output.with_suffix(".low-quality.jsonl")
    summary = output.with_suffix(".summary.json")
    counts = result.counts() | {"tools": list(tools), "config": {**vars(config), "weights": dict(config.weights)}}
    if check is not None:
        counts["held_out_accuracy"] = held_out_accuracy(check, result)
    write_files_atomic(
        {
            output: "".join(
                json.dumps(row, ensure_ascii=False) + "\n" for row in rows if row["synthesis"]["quality"] == "ok"
            ),
            low: "".join(
                json.dumps(row, ensure_ascii=False) + "\n" for row in rows if row["synthesis"]["quality"] != "ok"
            ),
            summary: json.dumps(counts, indent=2, ensure_ascii=False) + "\n",
        }
    )
    return SynthesisDataOutput(result, [output, low, summary])
