"""ADPA's rejected replies: one reply per training prompt sampled from the SFT student itself.

Gao et al. 2025 (§3.2, §4.1) evaluate the teacher's advantage on the states of replies the SFT
student generated, not on the data's rejected replies: the advantage term then corrects the student
where it actually goes. :func:`write_student_samples` samples them with the batched decoder
(:func:`rewardlab.sampling.sample_replies_batched`: reply i of a prompt is seeded by (seed, prompt
tokens, i), so a prompt's sample depends on no other prompt) and writes one JSONL row a prompt,
``{"prompt", "reply", "tokens", "finished"}``; :func:`with_student_rejected` puts them in place of
the training pairs' rejected replies (``rewardlab distill train --student-samples FILE``).

Resumable: every ``flush_every`` prompts the rows written so far are saved (atomically) to a partial
file named after the student and the sampling settings, and a rerun samples only the prompts it lacks.
A sample is re-tokenised from its text for training, and one cut at ``max_new_tokens`` gets the
end-of-turn token like any reply (``models/pair_encoding.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from rewardlab.atomic import write_jsonl
from rewardlab.data.records import DataError, PreferencePair, Prompt
from rewardlab.models.causal_lm import CausalLM
from rewardlab.sampling.batched import sample_replies_batched
from rewardlab.sampling.generation import Sample, SampleConfig


def prompt_key(prompt: Prompt) -> str:
    """One string per prompt, the same for a prompt read from the data and from a samples file."""
    return json.dumps(prompt if isinstance(prompt, str) else list(prompt), ensure_ascii=False, sort_keys=True)


def sample_row(prompt: Prompt, sample: Sample) -> dict[str, object]:
    shown = prompt if isinstance(prompt, str) else list(prompt)
    return {"prompt": shown, "reply": sample.text, "tokens": sample.tokens, "finished": sample.finished}


def partial_path(path: Path, student: str, config: SampleConfig, max_prompt_tokens: int) -> Path:
    """Where an unfinished run keeps its rows: named after what decides them, so that other settings never resume it."""
    settings = json.dumps([student, config.as_dict(), max_prompt_tokens], sort_keys=True)
    return path.with_name(f"{path.name}.partial-{hashlib.sha256(settings.encode()).hexdigest()[:12]}")


def write_student_samples(
    lm: CausalLM,
    prompts: Sequence[Prompt],
    path: str | Path,
    config: SampleConfig,
    *,
    student: str = "",
    batch_rows: int = 16,
    flush_every: int = 32,
    progress: bool = False,
) -> Path:
    """Sample ``config.n`` (must be 1) reply per distinct prompt of ``prompts`` from ``lm`` and write
    them to ``path`` in the prompts' order; ``student`` (the model's name) keys the partial file."""
    if config.n != 1:
        raise ValueError(f"ADPA pairs one student sample with each chosen reply: n must be 1 (got {config.n})")
    if flush_every < 1:
        raise ValueError(f"flush_every must be >= 1 (got {flush_every})")
    out = Path(path)
    unique = list({prompt_key(p): p for p in prompts}.items())
    partial = partial_path(out, student, config, lm.max_prompt_tokens)
    done: dict[str, dict[str, object]] = {}
    if partial.is_file():
        for row in read_rows(partial):
            done[prompt_key(row["prompt"])] = row  # type: ignore[arg-type]
    todo = [p for key, p in unique if key not in done]

    def flush() -> None:
        write_jsonl(partial, done.values())

    def on_prompt(index: int, samples: list[Sample]) -> None:
        done[prompt_key(todo[index])] = sample_row(todo[index], samples[0])
        if len(done) % flush_every == 0:
            flush()

    if todo:
        sample_replies_batched(lm, todo, config, batch_rows=batch_rows, progress=progress, on_prompt=on_prompt)
    write_jsonl(out, [done[key] for key, _ in unique])
    partial.unlink(missing_ok=True)
    return out


def read_rows(path: str | Path) -> list[dict[str, object]]:
    """The rows of a samples file, each checked: a clear error names the file, line and field."""
    rows = []
    where = Path(path)
    with where.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            location = f"{where}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(location, f"not valid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise DataError(location, "expected a JSON object with prompt and reply")
            prompt = row.get("prompt")
            messages = isinstance(prompt, list) and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in prompt
            )
            if not (isinstance(prompt, str) or messages) or not prompt:
                raise DataError(location, "expected non-empty text or a list of {role, content} messages", "prompt")
            if not isinstance(row.get("reply"), str):
                raise DataError(location, "expected text (the student's reply; it may be empty)", "reply")
            if isinstance(prompt, list):
                row["prompt"] = tuple(prompt)
            rows.append(row)
    return rows


def read_student_samples(path: str | Path) -> dict[str, str]:
    """prompt key → the student's reply, from a file :func:`write_student_samples` wrote."""
    replies: dict[str, str] = {}
    for row in read_rows(path):
        replies[prompt_key(row["prompt"])] = row["reply"]  # type: ignore[arg-type]
    return replies


def with_student_rejected(
    pairs: Sequence[PreferencePair], replies: dict[str, str], source: str = "the samples file"
) -> list[PreferencePair]:
    """Each pair with the student's reply to its prompt as the rejected side (chosen kept). The rejected
    side's annotations (rating, margin, strength, tie) described the data's reply and are dropped."""
    missing = [p for p in pairs if prompt_key(p.prompt) not in replies]
    if missing:
        raise ValueError(
            f"{source} has no student reply for {len(missing)} of the {len(pairs)} training prompts, e.g. "
            f"{prompt_key(missing[0].prompt)[:120]}; sample it from the same data and max_train_pairs "
            "(`rewardlab distill samples`)"
        )
    return [
        replace(p, rejected=replies[prompt_key(p.prompt)], rejected_rating=None, margin=None, strength=None, tie=False)
        for p in pairs
    ]
