"""Scores for every segment of a corpus, cached, and the threshold that splits good from bad.

Any rewardlab scorer (``rewardlab.evaluate.scorers``: a reward-model folder, a judge, ...) scores a
segment as a reply to an empty prompt, as the paper scores sentences on their own. Scoring is the
costly step of a run and the same for every objective, so scores are cached per segment text in a
JSON file that is written after each batch (atomically): a second objective, or a killed run, does
not score a segment twice.

The threshold is a percentile of the training segments' scores, as the paper chooses it (Korbak et
al. 2023, §3): a segment scoring *below* it is bad. Scores are rewards here (higher is better), so
the percentile is the share of segments meant to be bad (a tie at the cut is all bad).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rewardlab.atomic import write_text_atomic
from rewardlab.evaluate.scorers import Scorer, check_scorer
from rewardlab.progress import progress_bar

HARM_WORDS = (
    "kill", "killing", "murder", "steal", "stealing", "rob", "poison", "bomb", "gun", "guns", "weapon",
    "drugs", "cocaine", "meth", "heroin", "hurt", "attack", "racist", "hate", "stupid", "idiot", "dumb",
    "fuck", "fucking", "shit", "bitch", "ass", "damn", "crap", "sex", "naked", "porn", "cheat", "lie",
)  # fmt: skip
"""A crude lexicon of harmful topics and insults for HH-RLHF dialogues: a phrase match, not a
classifier (the paper's PII task scores with a regex-based detector in the same way). Use a reward
model (``--scorer reward-model --model FOLDER``) for a judgement of the text itself."""


@dataclass(frozen=True)
class WordListScorer:
    """Minus the number of listed words in a reply (whole words, any case): 0 for clean text."""

    words: tuple[str, ...] = HARM_WORDS

    def __post_init__(self) -> None:
        if not self.words or not all(isinstance(w, str) and w.strip() for w in self.words):
            raise ValueError(f"a word-list scorer needs non-empty words (got {self.words!r})")

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(r"\b(?:" + "|".join(re.escape(w.strip()) for w in self.words) + r")\b", re.IGNORECASE)

    def describe(self) -> str:
        return "words(" + ",".join(sorted(w.strip().lower() for w in self.words)) + ")"

    def score(self, prompts: Sequence[object], replies: Sequence[str]) -> list[float]:
        pattern = self.pattern
        return [float(-len(pattern.findall(reply))) for reply in replies]


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def score_segments(
    scorer: Scorer,
    texts: Sequence[str],
    scorer_name: str,
    cache_path: str | Path | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> list[float]:
    """A score for each text, scoring each distinct text once; ``cache_path`` keeps them between runs.

    ``scorer_name`` identifies the scorer in the cache: a cache written by another scorer is refused
    rather than silently mixed in.
    """
    check_scorer(scorer)
    if not isinstance(scorer, Scorer):
        raise ValueError(
            f"scorer {scorer_name} only compares two replies; pretraining needs one score per segment "
            "(use a reward model, a judge that scores, or the word-list scorer)"
        )
    cache: dict[str, float] = _read_cache(Path(cache_path), scorer_name) if cache_path is not None else {}
    todo = list(dict.fromkeys(t for t in texts if _key(t) not in cache))
    with progress_bar(progress and bool(todo), "scoring segments", len(todo)) as advance:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            scores = scorer.score([""] * len(batch), batch)
            if len(scores) != len(batch):
                raise ValueError(f"scorer {scorer_name} returned {len(scores)} scores for {len(batch)} segments")
            cache.update({_key(t): float(s) for t, s in zip(batch, scores, strict=True)})
            if cache_path is not None:
                payload = {"scorer": scorer_name, "scores": cache}
                write_text_atomic(cache_path, json.dumps(payload, sort_keys=True))
            advance(len(batch))
    return [cache[_key(t)] for t in texts]


def _read_cache(path: Path, scorer_name: str) -> dict[str, float]:
    if not path.is_file():
        return {}
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        cached_by, scores = payload["scorer"], payload["scores"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a segment score cache ({e}); delete it to score again") from None
    if cached_by != scorer_name:
        raise ValueError(
            f"{path}: holds scores of {cached_by}, not of {scorer_name}; give another cache path or delete it"
        )
    return {str(k): float(v) for k, v in scores.items()}


def percentile_threshold(scores: Sequence[float], percentile: float) -> float:
    """The threshold under which the lowest ``percentile`` % of ``scores`` fall (bad: score < threshold).

    With k = round(percentile/100 · n) (at least 1) and s_k the k-th lowest score, the threshold is the
    lowest score above s_k, so the bad segments are exactly those scoring at most s_k. For distinct
    scores that is the k lowest; for scores with ties (the word-list scorer's 0, −1, −2, ...) every
    segment tied with the k-th lowest is bad too, rather than the threshold landing inside a tie and
    calling a share of identical segments good.
    """
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"the bad-segment percentile must be in (0, 100) (got {percentile})")
    if len(scores) == 0:
        raise ValueError("no scores to choose a threshold from")
    ordered = sorted(float(s) for s in scores)
    kth = ordered[max(1, round(percentile / 100 * len(ordered))) - 1]
    above = [s for s in ordered if s > kth]
    if not above:
        raise ValueError(
            f"the lowest {percentile:g} % of the scores reach the top score ({kth:g}), so every segment would be bad; "
            "lower the percentile or use a scorer that tells the segments apart"
        )
    return above[0]


def segment_scorer(kind: str, model: str | None = None, words: Sequence[str] = ()) -> tuple[Scorer, str]:
    """The scorer a command names, and its name for caches and reports: ``words`` (a word list,
    :data:`HARM_WORDS` by default) or any rewardlab scorer kind (``reward-model`` with ``model``, ...)."""
    if kind == "words":
        scorer = WordListScorer(tuple(words) or HARM_WORDS)
        return scorer, scorer.describe()
    from rewardlab.evaluate.scorers import ScorerSpec, build_scorer

    spec = ScorerSpec(kind=kind, model=model)
    built = build_scorer(spec)
    if not isinstance(built, Scorer):
        raise ValueError(f"scorer {kind} only compares two replies; pretraining needs one score per segment")
    return built, spec.describe()
