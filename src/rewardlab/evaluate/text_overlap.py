"""Reference-based rewards: sentence BLEU and ROUGE-L, pure functions of strings.

BLEUBERI (Chang et al. 2025) finds that BLEU against a good reference answer agrees with human
preferences about as well as a trained reward model on instruction following, so these make a
training-free baseline any reward model should beat. Both are written out here rather than taken
from sacrebleu or rouge-score, to keep the install small; each follows its reference package's
defaults so that its numbers can be compared with published ones:

- :func:`sentence_bleu` is sacrebleu's ``sentence_bleu`` (Post 2018): the ``13a`` tokenizer of
  mteval-v13a, case kept, n-grams up to 4, the "exp" smoothing (Chen & Cherry 2014, method 3) and
  the effective order; scaled to [0, 1] rather than sacrebleu's [0, 100].
- :func:`rouge_l` is rouge-score's ``rougeL`` F-measure (Lin 2004, §3.1): lower-cased, every run
  of characters other than a-z and 0-9 a separator, no stemming.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

MAX_ORDER = 4

_13A_RULES = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # punctuation and symbols
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # period and comma unless after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # ... or unless before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # a dash after a digit
)
_ROUGE_SEPARATOR = re.compile(r"[^a-z0-9]+")


def tokenize_13a(text: str) -> list[str]:
    """mteval-v13a's tokenization (sacrebleu's default ``13a``): unescape four HTML entities, then
    split punctuation from words, keeping decimal points and thousands commas inside numbers."""
    text = text.rstrip().replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
        text = text.replace(entity, char)
    text = f" {text} "
    for pattern, replacement in _13A_RULES:
        text = pattern.sub(replacement, text)
    return text.split()


def ngram_counts(tokens: Sequence[str], order: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + order]) for i in range(len(tokens) - order + 1))


@dataclass(frozen=True)
class BleuOutput:
    """BLEU in [0, 1] with its parts: matched and total n-grams per order, brevity penalty, lengths."""

    score: float
    matches: tuple[int, ...]
    totals: tuple[int, ...]
    precisions: tuple[float, ...]
    brevity_penalty: float
    hypothesis_length: int
    reference_length: int


def sentence_bleu(hypothesis: str, references: str | Sequence[str]) -> BleuOutput:
    """Sentence BLEU (Papineni et al. 2002) as sacrebleu's ``sentence_bleu`` computes it.

    With n-gram matches m_n clipped by the largest count in any one reference, and t_n the
    hypothesis' n-grams: p_n = m_n / t_n; when m_n = 0 the "exp" smoothing uses p_n = 1 / (2^k t_n),
    k counting the orders with no match so far. Orders the hypothesis is too short to have
    (t_n = 0) are left out (effective order N). The reference length r is the one closest to the
    hypothesis length c (the shorter on a tie); BP = exp(1 − r/c) when c < r, else 1.
    BLEU = BP · exp((1/N) Σ_n log p_n), and 0 when no unigram matches at all.
    """
    references = [references] if isinstance(references, str) else list(references)
    if not references:
        raise ValueError("BLEU needs at least one reference")
    hyp = tokenize_13a(hypothesis)
    refs = [tokenize_13a(r) for r in references]
    matches, totals = [], []
    for order in range(1, MAX_ORDER + 1):
        hyp_counts = ngram_counts(hyp, order)
        most: Counter[tuple[str, ...]] = Counter()
        for ref in refs:
            most |= ngram_counts(ref, order)  # element-wise maximum over references
        matches.append(sum(min(count, most[gram]) for gram, count in hyp_counts.items()))
        totals.append(max(len(hyp) - order + 1, 0))
    c = len(hyp)
    r = min((len(ref) for ref in refs), key=lambda n: (abs(n - c), n))
    bp = 1.0 if c >= r else (math.exp(1 - r / c) if c > 0 else 0.0)
    precisions = [0.0] * MAX_ORDER
    if not any(matches):
        return BleuOutput(0.0, tuple(matches), tuple(totals), tuple(precisions), bp, c, r)
    smoothing, effective = 1.0, MAX_ORDER
    for n in range(MAX_ORDER):
        if totals[n] == 0:
            break
        effective = n + 1
        if matches[n] == 0:
            smoothing *= 2
            precisions[n] = 1 / (smoothing * totals[n])
        else:
            precisions[n] = matches[n] / totals[n]
    score = bp * math.exp(sum(math.log(p) for p in precisions[:effective]) / effective)
    return BleuOutput(score, tuple(matches), tuple(totals), tuple(precisions), bp, c, r)


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's default tokenization: lower case, anything but a-z and 0-9 separates tokens."""
    return _ROUGE_SEPARATOR.sub(" ", text.lower()).split()


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, by the usual dynamic programme in O(|a|·|b|)."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class RougeOutput:
    precision: float
    recall: float
    fmeasure: float


def rouge_l(hypothesis: str, references: str | Sequence[str]) -> RougeOutput:
    """ROUGE-L (Lin 2004, eq. 2-4 with β = 1): with L the longest common subsequence of tokens,
    P = L/|hypothesis|, R = L/|reference|, F = 2PR/(P + R) (0 when L = 0).

    Several references: the one with the highest F, as rouge-score's ``score_multi`` takes.
    """
    references = [references] if isinstance(references, str) else list(references)
    if not references:
        raise ValueError("ROUGE-L needs at least one reference")
    hyp = rouge_tokens(hypothesis)
    best = RougeOutput(0.0, 0.0, 0.0)
    for reference in references:
        ref = rouge_tokens(reference)
        common = lcs_length(hyp, ref)
        if common == 0:
            continue
        p, r = common / len(hyp), common / len(ref)
        candidate = RougeOutput(p, r, 2 * p * r / (p + r))
        if candidate.fmeasure > best.fmeasure:
            best = candidate
    return best
