"""The one template that puts a context (or a principle to judge by) into the text a reward model reads.

A context-conditioned preference P(y1 ≻ y2 | x, c) ("Improving Context-Aware Preference Modeling
for Language Models", Pitis et al. 2024) and a principle-following reward (RewardAnything, Yu et
al. 2025) both ask the reward model to read something besides the prompt: a context ``c`` (who the
user is, what they asked for) or a natural-language principle. Both are put before the prompt, the
same way, so a model trained on contexts reads principles as it read its contexts:

- a text prompt becomes ``"Context: {context}\\n\\n{prompt}"`` (the prompt's leading whitespace
  dropped, so an HH transcript reads ``Context: ...\\n\\nHuman: ...``);
- a conversation gets the line ``Context: {context}`` as a system message before its first message,
  or appended to its own first system message (chat templates expect at most one, first).

Readers fold a row's ``context`` field in when they build the record, so every trainer, scorer and
metric sees it without knowing about it; the record keeps the context too (``PreferencePair.context``).
"""

from __future__ import annotations

from rewardlab.data.records import Prompt

CONTEXT_TEMPLATE = "Context: {context}"
"""The line that states the context (or principle), before the prompt."""


def with_context(prompt: Prompt, context: str | None) -> Prompt:
    """``prompt`` with ``context`` stated before it (unchanged when there is no context)."""
    if context is None or not context.strip():
        return prompt
    line = CONTEXT_TEMPLATE.format(context=context.strip())
    if isinstance(prompt, str):
        return f"{line}\n\n{prompt.lstrip()}"
    if prompt and prompt[0]["role"] == "system":
        first = {"role": "system", "content": f"{prompt[0]['content'].rstrip()}\n\n{line}"}
        return (first, *prompt[1:])
    return ({"role": "system", "content": line}, *prompt)
