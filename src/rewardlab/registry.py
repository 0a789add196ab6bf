"""Methods by name, so that adding one is one file: the registry behind objectives, policy losses,
reward transforms and scorers.

An entry is registered by the module that defines it. The registry finds those modules itself:
every module of its home packages (no hand-kept import list to forget) and every plugin that an
installed distribution names in the registry's entry-point group, e.g. in ``pyproject.toml``::

    [project.entry-points."rewardlab.objectives"]
    my_loss = "my_package.my_loss"

Finding is lazy, done on the first lookup or listing, so importing a package stays cheap.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


def normalise_name(name: str) -> str:
    """The key a name is stored under: case, surrounding spaces and '-' versus '_' do not matter,
    so ``Soft-Bradley-Terry`` finds ``soft_bradley_terry``."""
    return name.strip().lower().replace("-", "_")


class UnknownNameError(ValueError):
    """A name nothing is registered under; the message lists what is."""


class PluginError(ValueError):
    """An entry point that failed to load. A ``ValueError``, as other setup mistakes are, so the CLI
    reports it in one line; the message names the distribution to fix or uninstall."""


def import_modules(name: str) -> None:
    """Import the module ``name`` and, when it is a package, each of its modules (one level down)."""
    module = importlib.import_module(name)
    for info in pkgutil.iter_modules(getattr(module, "__path__", ()), prefix=f"{name}."):
        importlib.import_module(info.name)


def load_entry_point(entry_point: EntryPoint, group: str) -> None:
    """Load one plugin, turning any failure into a ``PluginError`` that says whose plugin it was."""
    try:
        entry_point.load()
    except Exception as error:
        dist = entry_point.dist.name if entry_point.dist is not None else "an unnamed distribution"
        raise PluginError(
            f"plugin {entry_point.name!r} ({entry_point.value}) of distribution {dist!r}, entry-point group "
            f"{group!r}, failed to load: {type(error).__name__}: {error}"
        ) from error


class Registry(Generic[T]):
    """Entries of one kind by normalised name, with optional aliases; a name is taken at most once.

    ``kind`` names the entries in messages (``"objective"``, plural ``kind + "s"`` unless given);
    ``packages`` are imported whole and ``group``'s entry points loaded on the first lookup.
    """

    def __init__(
        self,
        kind: str,
        *,
        plural: str | None = None,
        packages: Iterable[str] = (),
        group: str | None = None,
        normalise: Callable[[str], str] = normalise_name,
    ) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.packages = tuple(packages)
        self.group = group
        self.normalise = normalise
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._discovered = False
        self._discovering = False
        self._lock = threading.RLock()

    def add(self, name: str, entry: T, aliases: Iterable[str] = ()) -> str:
        """Register ``entry`` under ``name`` and ``aliases``; returns the key. A taken name is refused,
        because a second entry silently replacing the first would train a different method."""
        keys = [self.normalise(name), *(self.normalise(a) for a in aliases)]
        with self._lock:
            taken = [k for i, k in enumerate(keys) if k in self._entries or k in self._aliases or k in keys[:i]]
            if taken:
                raise ValueError(f"{self.kind} name {taken[0]!r} is already registered")
            self._entries[keys[0]] = entry
            self._aliases.update(dict.fromkeys(keys[1:], keys[0]))
        return keys[0]

    def discover(self) -> None:
        """Import the home packages' modules and load the plugins, once (they register themselves)."""
        with self._lock:
            if self._discovered or self._discovering:  # a module being imported may look entries up
                return
            self._discovering = True
            try:
                for package in self.packages:
                    import_modules(package)
                for entry_point in entry_points(group=self.group) if self.group else ():
                    load_entry_point(entry_point, self.group)  # type: ignore[arg-type]
                self._discovered = True
            finally:
                self._discovering = False

    def key(self, name: str) -> str | None:
        """The registered name ``name`` (or an alias of it) stands for, or ``None``."""
        self.discover()
        key = self.normalise(name)
        key = self._aliases.get(key, key)
        return key if key in self._entries else None

    def unknown(self, name: str) -> str:
        """The message for a name nothing is registered under."""
        return f"unknown {self.kind} {name!r}; registered {self.plural}: {', '.join(self.names()) or 'none'}"

    def get(self, name: str) -> T:
        key = self.key(name)
        if key is None:
            raise UnknownNameError(self.unknown(name))
        return self._entries[key]

    def names(self) -> list[str]:
        """Registered names, sorted (aliases left out)."""
        self.discover()
        return sorted(self._entries)

    def aliases(self, name: str) -> list[str]:
        """The other names the entry registered as ``name`` answers to, sorted."""
        key = self.key(name)
        return sorted(alias for alias, target in self._aliases.items() if target == key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.key(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
