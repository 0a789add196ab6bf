"""The generic registry: names, aliases, refusals, and finding entries in a package and in plugins.

Packages and plugins are written into ``tmp_path`` (a module file, and a ``*.dist-info`` folder with
``METADATA`` and ``entry_points.txt``, which is all ``importlib.metadata`` reads), with names unique
to the test so that nothing imported here collides with another test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rewardlab.registry import PluginError, Registry, UnknownNameError, normalise_name


def write_distribution(root: Path, name: str, entry_points: dict[str, dict[str, str]]) -> None:
    """An installed distribution as ``importlib.metadata`` sees it on ``sys.path``."""
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    sections = [
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()) for group, points in entry_points.items()
    ]
    (info / "entry_points.txt").write_text("\n".join(sections))


def test_names_are_normalised_and_listed_sorted():
    assert normalise_name("  Soft-Bradley-Terry ") == "soft_bradley_terry"
    things: Registry[int] = Registry("thing")
    assert things.add("Zeta-One", 1) == "zeta_one"
    things.add("alpha", 2)
    assert things.names() == ["alpha", "zeta_one"] and list(things) == ["alpha", "zeta_one"] and len(things) == 2
    assert things.get("ZETA-one") == 1 and "Zeta_One" in things and "beta" not in things and 3 not in things


def test_aliases_find_the_entry_and_are_not_listed():
    losses: Registry[str] = Registry("policy loss", plural="policy losses")
    losses.add("dpo", "the dpo loss", aliases=("Sigmoid",))
    assert losses.get("sigmoid") == "the dpo loss" and losses.key("SIGMOID") == "dpo"
    assert losses.names() == ["dpo"] and losses.aliases("dpo") == ["sigmoid"]


def test_a_name_or_alias_already_taken_is_refused():
    things: Registry[int] = Registry("thing")
    things.add("one", 1, aliases=("uno",))
    for name, aliases in [("One", ()), ("two", ("UNO",)), ("uno", ()), ("three", ("tres", "Tres"))]:
        with pytest.raises(ValueError, match=r"thing name '.*' is already registered"):
            things.add(name, 2, aliases=aliases)
    assert things.names() == ["one"]  # a refused registration leaves nothing behind


def test_an_unknown_name_is_refused_with_the_registered_choices():
    losses: Registry[int] = Registry("policy loss", plural="policy losses")
    losses.add("ipo", 1)
    losses.add("dpo", 2)
    with pytest.raises(UnknownNameError, match=r"^unknown policy loss 'kto'; registered policy losses: dpo, ipo$"):
        losses.get("kto")
    assert Registry("thing").unknown("x") == "unknown thing 'x'; registered things: none"
    assert issubclass(UnknownNameError, ValueError)  # reported like any other setup mistake


def test_every_module_of_the_home_package_is_found_on_first_lookup(tmp_path, monkeypatch):
    """No import list: the package's modules register themselves, imported on the first lookup only."""
    package = tmp_path / "regtest_home_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from rewardlab.registry import Registry\nTHINGS = Registry('thing', packages=('regtest_home_pkg',))\n"
    )
    for name in ("alpha", "beta_family"):
        (package / f"{name}.py").write_text(f"from regtest_home_pkg import THINGS\nTHINGS.add({name!r}, {name!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from regtest_home_pkg import THINGS

    assert "regtest_home_pkg.alpha" not in sys.modules  # importing the package stays cheap
    assert THINGS.names() == ["alpha", "beta_family"]
    assert THINGS.get("beta-family") == "beta_family" and "regtest_home_pkg.alpha" in sys.modules
    assert THINGS.names() == ["alpha", "beta_family"]  # found once: no second registration, no refusal


def test_plugins_of_the_entry_point_group_are_loaded(tmp_path, monkeypatch):
    (tmp_path / "regtest_plugin_things.py").write_text(
        "from regtest_registry_home import THINGS\nTHINGS.add('plugin-thing', 42)\n"
    )
    (tmp_path / "regtest_registry_home.py").write_text(
        "from rewardlab.registry import Registry\nTHINGS = Registry('thing', group='regtest.things')\n"
    )
    write_distribution(tmp_path, "regtest-plugin", {"regtest.things": {"mine": "regtest_plugin_things"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    from regtest_registry_home import THINGS

    THINGS.add("built_in", 1)
    assert THINGS.names() == ["built_in", "plugin_thing"] and THINGS.get("Plugin-Thing") == 42


def test_a_plugin_that_fails_to_load_is_named_with_its_distribution(tmp_path, monkeypatch):
    write_distribution(tmp_path, "regtest-broken", {"regtest.broken": {"faulty": "regtest_no_such_module:thing"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    things: Registry[int] = Registry("thing", group="regtest.broken")
    with pytest.raises(PluginError) as caught:
        things.names()
    message = str(caught.value)
    assert "plugin 'faulty' (regtest_no_such_module:thing) of distribution 'regtest-broken'" in message
    assert "entry-point group 'regtest.broken'" in message and "ModuleNotFoundError" in message
    with pytest.raises(PluginError):  # not marked as found: the next lookup says so again
        things.get("x")
