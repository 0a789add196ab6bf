"""Which prompts a run answers, and offline DPO's recorded pairs for them.

With several ``data.sources`` (HH and UltraFeedback, say) the joined split lists one source after the
other; taking its first N prompts would take them all from the first source. :func:`balanced_prompts`
takes them in turn from each source instead (one source: the first N, as before), so a prompt budget of
N is shared evenly between the sources and the held-out prompts are too.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

from rewardlab.data.records import PreferencePair, Prompt
from rewardlab.data.source_names import source_name
from rewardlab.policy.evaluation import distinct_prompts


def balanced_prompts(pairs: Sequence[PreferencePair], limit: int) -> list[Prompt]:
    """Up to ``limit`` distinct prompts, taken in turn from each source's distinct prompts, in order."""
    by_source: dict[str | None, list[PreferencePair]] = {}
    for pair in pairs:
        by_source.setdefault(source_name(pair), []).append(pair)
    if len(by_source) < 2:
        return distinct_prompts(pairs, limit)
    columns = [distinct_prompts(part, limit) for part in by_source.values()]
    seen: set[str] = set()
    prompts: list[Prompt] = []
    for prompt in itertools.chain.from_iterable(itertools.zip_longest(*columns)):
        if prompt is not None and repr(prompt) not in seen and len(prompts) < limit:
            seen.add(repr(prompt))
            prompts.append(prompt)
    return prompts


def recorded_pairs(pairs: Sequence[PreferencePair], prompts: Sequence[Prompt], n: int) -> list[PreferencePair]:
    """``pairs.strategy=recorded`` (offline DPO as a round): every recorded training pair whose prompt is one of
    ``prompts``, as the data gives it, with the round in its id. Ties and pairs whose two sides have different
    prompts (MAPL's intra-sample pairs) are left out: DPO learns from neither."""
    wanted = {repr(p) for p in prompts}
    kept = [p for p in pairs if repr(p.prompt) in wanted and not p.tie and p.rejected_prompt is None]
    return [dataclasses.replace(p, id=f"round-{n}/recorded-{i}") for i, p in enumerate(kept)]
