"""A resolved config as YAML with each key's one-line doc above it (``rewardlab train --print-config``).

The docs are the attribute docstrings written under each field of the config dataclasses (the
string literal after ``name: type = default``), read from the class source with ``ast``: the place
a contributor already documents a field, so a doc is written once and users need not read the
config modules. A field without one is printed without a comment. The output reads back with
``--config`` to the same config.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import re
import textwrap
from typing import Any

import yaml


def render_config(config: Any) -> str:
    """``config`` (a nested config dataclass) as commented YAML, keys in field order."""
    return "\n".join(_lines(config, indent="")) + "\n"


def undocumented_keys(config: Any, prefix: str = "") -> list[str]:
    """The dotted keys of ``config`` that have no doc to print."""
    docs = field_docs(type(config))
    missing = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            missing += undocumented_keys(value, f"{prefix}{f.name}.")
        elif f.name not in docs:
            missing.append(f"{prefix}{f.name}")
    return missing


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The first sentence of each field's attribute docstring, base classes' fields included."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs |= _attribute_docstrings(klass)
    return docs


def class_doc(cls: type) -> str:
    """The first sentence of a config class's own docstring; empty when it has none."""
    doc = cls.__dict__.get("__doc__")
    if not doc or doc.startswith(f"{cls.__name__}("):  # dataclass' generated signature, not a doc
        return ""
    return _first_sentence(doc)


def _lines(config: Any, indent: str) -> list[str]:
    docs = field_docs(type(config))
    lines = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            if doc := class_doc(type(value)):
                lines.append(f"{indent}# {doc}")
            lines.append(f"{indent}{f.name}:")
            lines += _lines(value, indent + "  ")
            continue
        if f.name in docs:
            lines.append(f"{indent}# {docs[f.name]}")
        lines.append(f"{indent}{f.name}: {_yaml_value(value)}")
    return lines


def _yaml_value(value: Any) -> str:
    """One value in YAML's flow style, on one line (``{}``, ``[a, b]``, ``null``, quoted where needed)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), sort_keys=False)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _attribute_docstrings(klass: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):  # no source to read (a class made at run time, a frozen install)
        return {}
    body = next(node for node in ast.parse(source).body if isinstance(node, ast.ClassDef)).body
    docs = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = _first_sentence(following.value.value)
    return docs


SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)\.\s")
"""A full stop and a space, except in "e.g." and "i.e.", which a doc's first sentence often holds."""


def _first_sentence(doc: str) -> str:
    """The first sentence, on one line, with reStructuredText's double backticks made single."""
    paragraph = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split()).replace("``", "`")
    end = SENTENCE_END.search(paragraph)
    return paragraph if end is None else paragraph[: end.start() + 1]
