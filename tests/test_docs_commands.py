"""Every ``rewardlab`` command that ``data/README.md`` shows runs as written (issue 27, bug 2).

The commands are read from the file's code blocks, so a command edited there is tested as edited.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app

ROOT = Path(__file__).resolve().parents[1]
DATA_README = ROOT / "data" / "README.md"


def documented_commands(path: Path) -> list[str]:
    """The ``rewardlab ...`` lines of the fenced code blocks in ``path``."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("rewardlab ")]


COMMANDS = documented_commands(DATA_README)


def test_the_readme_documents_commands() -> None:
    assert len(COMMANDS) >= 4


@pytest.mark.parametrize("command", COMMANDS)
def test_documented_command_exits_zero(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the commands name files relative to the repository root
    result = CliRunner().invoke(app, shlex.split(command)[1:])
    assert result.exit_code == 0, f"{command}\n{result.output}"


def test_identical_replies_are_skipped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 200-pair UltraFeedback file stops no more at line 44: the row is skipped, and the count says so."""
    monkeypatch.chdir(ROOT)
    columns = "chosen_rating=metadata.score_chosen,rejected_rating=metadata.score_rejected"
    result = CliRunner().invoke(app, ["data", "check", "data/ultrafeedback-binarized-200.jsonl", "--columns", columns])
    assert result.exit_code == 0, result.output
    assert 'skipped: data/ultrafeedback-binarized-200.jsonl:44: field "rejected": is identical' in result.output
