"""How much Markdown formatting a reply carries: headers, list items, bold spans and code.

Reward models learn to reward formatting itself (Zhang et al. 2024, "From Lists to Emojis: How Format
Bias Affects Model Alignment"), much as they reward length; ``bias.style_bias`` measures it with the
count below. Each element is counted once where it appears; code inside a fenced block is one code
element and none of its lines count as headers, lists or bold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^\s{0,3}(```|~~~).*?^\s{0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
_HEADER = re.compile(r"^\s{0,3}#{1,6}\s+\S", re.MULTILINE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*(?=\S)[^\n]*?\S\*\*|__(?=\S)[^\n]*?\S__")
_INLINE_CODE = re.compile(r"`[^`\n]+`")


@dataclass(frozen=True)
class MarkdownElements:
    """Counts of the Markdown elements of one text; ``total`` is its formatting score."""

    headers: int
    list_items: int
    bold: int
    code: int

    @property
    def total(self) -> int:
        return self.headers + self.list_items + self.bold + self.code


def markdown_elements(text: str) -> MarkdownElements:
    """The headers, list items, bold spans and code (fenced blocks plus inline spans) of ``text``."""
    fences = len(_FENCE.findall(text))
    prose = _FENCE.sub("", text)
    return MarkdownElements(
        headers=len(_HEADER.findall(prose)),
        list_items=len(_LIST_ITEM.findall(prose)),
        bold=len(_BOLD.findall(prose)),
        code=fences + len(_INLINE_CODE.findall(prose)),
    )


def formatting_score(text: str) -> int:
    """The number of Markdown elements in ``text`` (``markdown_elements(text).total``)."""
    return markdown_elements(text).total
