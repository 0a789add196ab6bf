"""Sampled replies kept on disk (JSONL), keyed by everything that decides them.

Generation is the slow part of a best-of-N study and does not depend on the reward models, so a
rerun with other gold or proxy models reads the replies back instead of sampling them again. The
key hashes the policy (its resolved folder and weight files' sizes and times), the prompts, the
sampling settings and the precision; the file is rewritten whole (atomically) after every prompt,
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rewardlab.atomic import write_text_atomic
from rewardlab.data.records import DataError, Prompt
from rewardlab.models.backbones import resolve_backbone
from rewardlab.sampling.generation import Sample, SampleConfig


def policy_fingerprint(policy: str) -> str:
    """The policy's resolved folder, plus the size and modification time of its weight files."""
    path = resolve_backbone(policy).resolve()
    stats = sorted(
        (f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in path.iterdir() if f.suffix in (".safetensors", ".bin")
    )
    return json.dumps([str(path), stats])


def generation_key(policy: str, prompts: Sequence[Prompt], config: SampleConfig, precision: str) -> str:
    """A short hash of what decides the replies (not of the reward models)."""
    identity = {
        "policy": policy_fingerprint(policy),
        "prompts": [p if isinstance(p, str) else list(p) for p in prompts],
        "sampling": config.as_dict(),
        "precision": precision,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


class GenerationCache:
    """``{directory}/generations-{key}.jsonl``: a header line, then one line per finished prompt."""

    def __init__(self, directory: str | Path, key: str, header: dict[str, object]) -> None:
        self.path = Path(directory) / f"generations-{key}.jsonl"
        self.key = key
        self.header = {"key": key, **header}
        self.records: dict[int, list[Sample]] = {}
        self._rows: dict[int, dict[str, object]] = {}

    def load(self, prompt_count: int) -> dict[int, list[Sample]]:
        """The prompts already sampled (index → replies); a damaged file is an error naming its line."""
        if not self.path.is_file():
            return {}
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            location = f"{self.path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(location, f"not valid JSON ({e.msg}); delete the file to sample again") from None
            if number == 1:
                if not isinstance(row, dict) or row.get("key") != self.key:
                    raise DataError(location, "is not the header of this cache (wrong key); delete the file")
                continue
            index, samples = self._parse(row, location, prompt_count)
            self.records[index] = samples
            self._rows[index] = row
        return dict(self.records)

    def _parse(self, row: object, location: str, prompt_count: int) -> tuple[int, list[Sample]]:
        if not isinstance(row, dict):
            raise DataError(location, "expected a JSON object with 'index' and 'samples'")
        index = row.get("index")
        if not isinstance(index, int) or not 0 <= index < prompt_count:
            raise DataError(location, f"must be a prompt index in [0, {prompt_count}) (got {index!r})", field="index")
        samples = row.get("samples")
        if not isinstance(samples, list) or not all(
            isinstance(s, dict)
            and isinstance(s.get("text"), str)
            and isinstance(s.get("tokens"), int)
            and isinstance(s.get("finished"), bool)
            for s in samples
        ):
            raise DataError(location, "must be a list of {text, tokens, finished} objects", field="samples")
        return index, [Sample(s["text"], s["tokens"], s["finished"]) for s in samples]

    def add(self, index: int, prompt: Prompt, samples: list[Sample]) -> None:
        """Record one prompt's replies (with the prompt, for reading) and rewrite the file atomically."""
        self.records[index] = samples
        self._rows[index] = {
            "index": index,
            "prompt": prompt if isinstance(prompt, str) else list(prompt),
            "samples": [asdict(s) for s in samples],
        }
        lines = [json.dumps(self.header, ensure_ascii=False)]
        lines += [json.dumps(self._rows[i], ensure_ascii=False) for i in sorted(self._rows)]
        write_text_atomic(self.path, "\n".join(lines) + "\n")
