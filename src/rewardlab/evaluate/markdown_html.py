"""The Markdown that rewardlab's reports write, as HTML: headings, bullet lists, tables, paragraphs.

Only the forms ``report.render_markdown`` produces are read: ``#``/``##`` headings, ``- `` list
items, pipe tables (a header row, a ``|---|`` rule, body rows) and ``**bold**`` / ```code``` spans.
Every line is HTML-escaped before any markup is added, so text from the user (a model path, a
subset name) can never become a tag: ``<script>`` arrives as ``&lt;script&gt;``.
"""

from __future__ import annotations

import html
import re

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")
_RULE = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")


def inline(text: str) -> str:
    """One line of text, escaped, with ``**bold**`` and ```code``` spans as tags."""
    return _BOLD.sub(r"<strong>\1</strong>", _CODE.sub(r"<code>\1</code>", html.escape(text)))


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def table(header: list[str], rows: list[list[str]]) -> str:
    """A table of escaped cells (inline markup applied), wrapped to scroll sideways on narrow screens."""
    head = "".join(f"<th>{inline(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def markdown_to_html(markdown: str) -> str:
    """The report's Markdown (see the module docstring) as an HTML fragment."""
    out: list[str] = []
    items: list[str] = []
    lines = markdown.splitlines()
    i = 0

    def close_list() -> None:
        if items:
            out.append("<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>")
            items.clear()

    while i < len(lines):
        line = lines[i]
        if line.startswith("|") and i + 1 < len(lines) and _RULE.match(lines[i + 1]):
            close_list()
            header, rows, i = _cells(line), [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            out.append(table(header, rows))
            continue
        if line.startswith("- "):
            items.append(inline(line[2:]))
        else:
            close_list()
            heading = re.match(r"^(#{1,3}) (.*)$", line)
            if heading:
                level = len(heading.group(1))
                out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
            elif line.strip():
                out.append(f"<p>{inline(line)}</p>")
        i += 1
    close_list()
    return "".join(out)
