"""Every package rewardlab imports is one a plain ``pip install rewardlab`` installs.

A package that comes only with the dev extra works in every test and fails on a user's machine
(``eval --scorer remote`` needed httpx, which only ``[dev]`` brought). A package that arrives
with another dependency is declared too: the other may drop it. An optional extra is allowed only
for an import inside ``try: ... except ImportError`` (or ``ModuleNotFoundError``), where the code
can say which extra to install.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import rewardlab

SOURCE = Path(rewardlab.__file__).parent
PYPROJECT = tomllib.loads((SOURCE.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalise(re.match(r"[A-Za-z0-9._-]+", r.strip()).group()) for r in requirements}


def guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether an import sits in a ``try`` that catches a missing module."""
    while node in parents:
        child, node = node, parents[node]
        if isinstance(node, ast.Try) and child in node.body:
            caught = [h.type for h in node.handlers if h.type is not None]
            names = {n.id for t in caught for n in ast.walk(t) if isinstance(n, ast.Name)}
            if names & {"ImportError", "ModuleNotFoundError"}:
                return True
    return False


def third_party_imports(root: Path) -> list[tuple[str, str, bool]]:
    """(top-level module, file:line, guarded) for each absolute import outside the standard library."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.partition(".")[0]
                if top not in sys.stdlib_module_names and top != "rewardlab":
                    found.append((top, f"{path.relative_to(root.parent)}:{node.lineno}", guarded(node, parents)))
    return found


def undeclared(root: Path, project: dict) -> list[str]:
    """Imports whose distribution the project does not declare (an extra counts where guarded)."""
    distributions = importlib.metadata.packages_distributions()
    required = requirement_names(project.get("dependencies", []))
    extras = requirement_names([r for group in project.get("optional-dependencies", {}).values() for r in group])
    problems = []
    for module, where, is_guarded in third_party_imports(root):
        names = {normalise(d) for d in distributions.get(module, [])}
        if not names:
            problems.append(f"{where}: {module} is installed by no distribution in this environment")
        elif not names & (required | extras if is_guarded else required):
            problems.append(f"{where}: {module} ({', '.join(sorted(names))}) is not in [project.dependencies]")
    return problems


def test_every_imported_package_is_a_declared_dependency():
    assert undeclared(SOURCE, PYPROJECT) == []


def test_an_undeclared_or_extra_only_import_is_found(tmp_path):
    package = tmp_path / "rewardlab"
    package.mkdir()
    (package / "plain.py").write_text("import os\nimport yaml\nfrom httpx import Client\n")
    optional = (
        "def load():\n    try:\n        import httpx\n    except ImportError:\n        raise SystemExit('x[remote]')\n"
    )
    (package / "optional.py").write_text(optional)
    project = {"dependencies": ["PyYAML>=6"], "optional-dependencies": {"remote": ["httpx>=0.27"]}}
    assert undeclared(package, project) == ["rewardlab/plain.py:3: httpx (httpx) is not in [project.dependencies]"]


def test_pyproject_metadata():
    assert PYPROJECT["license"] == "Apache-2.0"  # an SPDX expression (PEP 639), not a table
    torch = next(r for r in PYPROJECT["dependencies"] if normalise(r).startswith("torch"))
    assert "<" not in torch  # no upper pin that only this project's machine needs
