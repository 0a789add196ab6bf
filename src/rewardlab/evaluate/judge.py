"""A generative judge: a local chat LM asked which of two replies is better.

The preference is read from the probabilities of the answer tokens, not from sampled text:
ℓ(first, second) = log P("A") − log P("B") at the position where the verdict is due, each label's
probability summed over its spellings as one token ("A" and " A"). LLM judges favour one position
(Zheng et al. 2023, §3.3), so both orders are asked and their log-odds averaged,

    compare(x, a, b) = (ℓ(a, b) − ℓ(b, a)) / 2,

which is exactly antisymmetric: compare(x, b, a) = −compare(x, a, b), so σ of the two are
complementary probabilities.

Options from recent generative reward models:

- ``principle`` (RewardAnything, Yu et al. 2025): a natural-language principle or rubric the
  judge is told to follow, placed before the task;
- ``reasoning`` (RM-R1, Chen et al. 2025, reward modelling as reasoning): the judge first writes
  a short rationale (at most ``reasoning_tokens`` tokens; greedy, or sampled with a generator
  seeded by ``seed`` and the prompt itself), then the verdict probabilities are read after
  ``Verdict:``. ``reasoning_style`` says what it writes: a rationale (``explain``), a rubric first
  (``rubric``) or its own solution first (``solve``), RM-R1's chain of rubrics. RM-R1 trains its judges
  to reason; an untrained small LM's rationale may help little.
- ``tools`` (Themis, Li et al. 2024, tool-augmented reward modelling): tools run on each response
  before the verdict (a calculator recomputing its calculations, its code run in the sandbox, passages
  of local documents for the question) and what they report is shown under it. Themis trains its model
  to choose the tool calls; here every given tool looks at every response, so the judge only has to
  read the reports.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import partial

import torch

from rewardlab.data.prompts import prompt_key
from rewardlab.data.records import Prompt
from rewardlab.models.causal_lm import CausalLM, as_messages
from rewardlab.tools.registry import Tool, tool_evidence

LABELS = ("A", "B")

TASK = (
    "Compare two responses of an AI assistant to the conversation below and decide which response is better."
    "{principle}\n\n[Conversation]\n{conversation}\n\n[Response A]\n{first}\n\n[Response B]\n{second}\n\n{ask}"
)
ASK_DIRECT = 'Answer with a single letter: "A" if Response A is better, "B" if Response B is better.'
ASK_REASONING = 'First explain briefly which response is better and why, then finish with "Verdict: A" or "Verdict: B".'
ASK_BY_STYLE = {
    "explain": ASK_REASONING,
    "rubric": (
        "First write a short rubric: the two or three things a good response to this conversation must do. "
        'Then check each response against it, and finish with "Verdict: A" or "Verdict: B".'
    ),
    "solve": (
        "First solve the task yourself, briefly. Then compare each response with your solution, "
        'and finish with "Verdict: A" or "Verdict: B".'
    ),
}
"""What the judge writes before its verdict (``reasoning_style``): a rationale, a rubric first, or its own
solution first (RM-R1's chain of rubrics: a rubric for chat, a solution for reasoning tasks)."""
VERDICT = "\n\nVerdict:"


def render_conversation(prompt: Prompt) -> str:
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in as_messages(prompt))


def judge_task(
    prompt: Prompt,
    first: str,
    second: str,
    *,
    principle: str | None,
    reasoning: bool,
    evidence: tuple[str | None, str | None] = (None, None),
    style: str = "explain",
) -> str:
    """The judge's instruction for one ordered pair (``first`` is shown as Response A), each response
    followed by what the tools found in it (``evidence``), if anything."""
    rule = f"\n\nJudge by this principle:\n{principle.strip()}" if principle and principle.strip() else ""
    shown = [
        reply + (f"\n\n[Tool results for Response {label}]\n{found}" if found else "")
        for reply, label, found in zip((first, second), LABELS, evidence, strict=True)
    ]
    return TASK.format(
        principle=rule,
        conversation=render_conversation(prompt),
        first=shown[0],
        second=shown[1],
        ask=ASK_BY_STYLE[style] if reasoning else ASK_DIRECT,
    )


def answer_token_ids(lm: CausalLM, label: str) -> list[int]:
    """The single tokens that spell ``label``, bare or after a space."""
    ids = []
    for text in (label, f" {label}"):
        tokens = lm.tokens(text)
        if len(tokens) == 1 and lm.tokenizer.decode(tokens).strip() == label and tokens[0] not in ids:
            ids.append(tokens[0])
    if not ids:
        raise ValueError(f'the judge\'s tokenizer has no single token for the answer "{label}"')
    return ids


@dataclass
class JudgeScorer:
    """Pairwise preferences of a local causal LM, position bias averaged out (see the module docstring)."""

    lm: CausalLM
    principle: str | None = None
    reasoning: bool = False
    reasoning_tokens: int = 64
    temperature: float = 0.0
    seed: int = 0
    tools: Sequence[tuple[str, Tool]] = ()
    """Tools run on each response before the verdict (``tools.registry``): what they report is shown
    under the response."""
    reasoning_style: str = "explain"
    """With ``reasoning``: explain (a rationale), rubric (a rubric first) or solve (its own solution first)."""

    @property
    def precision(self) -> str:
        return self.lm.precision

    def __post_init__(self) -> None:
        self._answers = [answer_token_ids(self.lm, label) for label in LABELS]
        if set(self._answers[0]) & set(self._answers[1]):
            raise ValueError("the judge's answer tokens for A and B overlap")
        if self.reasoning_tokens < 1:
            raise ValueError(f"reasoning_tokens must be at least 1 (got {self.reasoning_tokens})")
        if self.reasoning_style not in ASK_BY_STYLE:
            raise ValueError(f"reasoning_style must be one of {', '.join(ASK_BY_STYLE)} (got {self.reasoning_style!r})")

    def compare(self, prompts: Sequence[Prompt], a: Sequence[str], b: Sequence[str]) -> list[float]:
        """Log-odds that each ``a`` is the better reply to its prompt, averaged over both orders."""
        n = len(prompts)
        if not len(a) == len(b) == n:
            raise ValueError(f"prompts, a and b must have one entry each (got {n}, {len(a)}, {len(b)})")
        ordered = [(p, x, y) for p, x, y in zip(prompts, a, b, strict=True)]
        ordered += [(p, y, x) for p, x, y in zip(prompts, a, b, strict=True)]
        odds = self.order_logodds(ordered)
        return [(odds[i] - odds[n + i]) / 2 for i in range(n)]

    def order_logodds(self, items: Sequence[tuple[Prompt, str, str]]) -> list[float]:
        """log P(A) − log P(B) for each (prompt, first, second) as shown, with no order averaging."""
        reports: dict[tuple[Hashable, str], str | None] = {}  # each reply's tools run once, not once per order

        def evidence(prompt: Prompt, reply: str) -> str | None:
            key = (prompt_key(prompt), reply)
            if key not in reports:
                reports[key] = tool_evidence(self.tools, prompt, reply)
            return reports[key]

        prefixes = [self.lm.tokens(self.verdict_prefix(*item, evidence=evidence)) for item in items]
        logps = self.lm.next_token_logps(prefixes)
        mass = [torch.logsumexp(logps[:, ids], dim=-1) for ids in self._answers]
        return (mass[0] - mass[1]).tolist()

    def verdict_prefix(
        self, prompt: Prompt, first: str, second: str, evidence: Callable[[Prompt, str], str | None] | None = None
    ) -> str:
        """The text after which the verdict token is due (with the rationale when reasoning); ``evidence``
        gives a reply's tool reports (default: the tools run now)."""
        report = evidence or partial(tool_evidence, self.tools)
        task = judge_task(
            prompt,
            first,
            second,
            principle=self.principle,
            reasoning=self.reasoning,
            evidence=(report(prompt, first), report(prompt, second)),
            style=self.reasoning_style,
        )
        if self.lm.text_format == "chat":
            head = self.lm.tokenizer.apply_chat_template(
                [{"role": "user", "content": task}], tokenize=False, add_generation_prompt=True
            )
        else:
            head = f"{task}\n\n"
        if not self.reasoning:
            return head if self.lm.text_format == "chat" else head + "Answer:"
        rationale = self.lm.generate(
            self.lm.tokens(head), max_new_tokens=self.reasoning_tokens, temperature=self.temperature, seed=self.seed
        )
        rationale = rationale.split("Verdict")[0].strip()  # the verdict is read here, not taken from the text
        return head + rationale + VERDICT
