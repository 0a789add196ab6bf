"""The package's shape, as rules a change cannot break unnoticed.

Imports point one way along the flow of the library (data -> models -> objectives -> training ->
evaluate -> use), no two packages or modules import each other, and no module reaches into another's
private names. Imports inside functions count: a cycle broken by a late import is still a cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import rewardlab

ROOT = Path(rewardlab.__file__).parent

LAYERS = [
    {"atomic", "destinations", "progress", "precision", "allocator", "registry", "tuning"},
    {"data"},
    {"tools"},
    {"rewards"},
    {"models"},
    {"objectives"},
    {"runs"},
    {"evaluate"},
    {"training"},
    {"curation"},
    {"sampling"},
    {"detect"},
    {"process"},
    {"serve"},
    {"policy"},
    {"pretrain"},
    {"distill"},
    {"control"},
    {"diffusion"},
    {"online"},
    {"collect"},
    {"api"},
    {"cli", "__main__", "__init__"},
]
"""Bottom to top: a module may import from its own layer's packages or from layers below, never above.

``rewards`` (pure functions of scores) sits below ``models``, which aggregate ensemble and attribute
outputs with it; ``evaluate`` sits below ``training``, whose runs end with a held-out evaluation; ``curation`` (noisy
labels) judges data with saved models and reports through ``evaluate``, above ``training`` so that it
may train its judges; ``process`` (step rewards) sits above ``sampling``, whose decoder its rollouts and
step-guided search use; ``detect`` (reward models as detectors of LM text) sits above ``sampling``,
whose decoder writes its LM texts, and ``training``, which tunes its detectors; ``pretrain`` (language models
pretrained with feedback) and ``distill`` (students taught by an aligned teacher) sit above ``policy``, whose
LoRA and data settings ``distill`` reuses. ``control`` (rewards for control agents) sits above them: it reuses
the objectives, the metrics, the sandbox and the decoder; ``diffusion`` (aligning image diffusion models) sits
above it and uses the objectives, the intervals and the registry."""
LAYER = {name: depth for depth, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package: str = "") -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names taken from it) for every ``rewardlab`` import in the file;
    ``package`` (the file's own, by default) resolves relative imports."""
    found = []
    if not package:
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names if alias.name.startswith("rewardlab")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("rewardlab"):
                found.append((node.lineno, target, [alias.name for alias in node.names]))
    return found


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def part(module: str) -> str:
    """The first-level part of ``rewardlab`` a module belongs to (its package, or the module itself)."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def resolve(target: str, names: list[str]) -> list[str]:
    """The modules an import statement reads: ``from pkg import mod`` reads ``pkg.mod``."""
    submodules = [f"{target}.{name}" for name in names if f"{target}.{name}" in MODULES]
    return submodules or [target]


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for _, target, names in imports(path):
            edges[module].update(t for t in resolve(target, names) if t != module)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_part_of_the_package_has_a_layer():
    assert sorted({part(m) for m in MODULES} - set(LAYER)) == []


def test_imports_point_down_the_layers():
    upward = [
        f"{MODULES[module].relative_to(ROOT)}:{line} imports {target} ({part(target)} is above {part(module)})"
        for module, path in MODULES.items()
        for line, target, _ in imports(path)
        if LAYER[part(target)] > LAYER[part(module)]
    ]
    assert upward == []


def test_no_two_packages_import_each_other():
    edges = graph()
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in edges.items():
        packages[part(module)].update(part(t) for t in targets if part(t) != part(module))
    assert cycles(packages) == []


def test_no_two_modules_import_each_other():
    """Package ``__init__`` files only re-export their modules, so they are left out."""
    edges = {
        m: {t for t in ts if MODULES[t].name != "__init__.py"}
        for m, ts in graph().items()
        if MODULES[m].name != "__init__.py"
    }
    assert cycles(edges) == []


def test_no_private_name_is_imported_from_another_module():
    private = [
        f"{path.relative_to(ROOT)}:{line} imports {name} from {target}"
        for path in MODULES.values()
        for line, target, names in imports(path)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert private == []


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from rewardlab.policy import trainer\n", [(1, "rewardlab.policy", ["trainer"])]),
        ("def f():\n    import rewardlab.cli\n", [(2, "rewardlab.cli", [])]),
        ("from .metrics import estimate\n", [(1, "rewardlab.evaluate.metrics", ["estimate"])]),
    ],
)
def test_imports_are_read_inside_functions_too(tmp_path, source, expected):
    path = tmp_path / "module.py"
    path.write_text(source)
    assert imports(path, "rewardlab.evaluate") == expected


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
