"""An objective in another installed package: found through the ``rewardlab.objectives`` entry-point
group by the registry, ``rewardlab objectives`` and ``rewardlab train``, with no file of rewardlab edited.

The package is a module plus a ``*.dist-info`` folder (``METADATA``, ``entry_points.txt``) on
``PYTHONPATH``, which is what ``importlib.metadata`` reads of an installed distribution. It runs in
fresh interpreters, since the test process has already looked its objectives up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rewardlab.models.reward_model import RewardModel

PLUGIN = '''
import torch.nn.functional as F

from rewardlab.objectives import ObjectiveOutput, register_objective


@register_objective("plugin_hinge")
def plugin_hinge_loss(chosen, rejected, width: float = 1.0):
    """max(0, w - (r_c - r_r)): a hinge on the reward gap, from an installed plugin."""
    gap = chosen - rejected
    return ObjectiveOutput(F.relu(width - gap), {"accuracy": (gap.detach() > 0).float()})
'''


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    info = root / "lab_plugin_objective-0.1.dist-info"
    info.mkdir(parents=True)
    (root / "lab_plugin_objective.py").write_text(PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-plugin-objective\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[rewardlab.objectives]\nhinge = lab_plugin_objective\n")
    return root


def run(args: list[str], plugin_path: Path) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(plugin_path), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300)


def test_a_plugin_objective_is_listed(plugin_path):
    script = (
        "from rewardlab.objectives import objective_names, get_objective; "
        "print(objective_names()); print(get_objective('Plugin-Hinge').options); "
        "from rewardlab.cli import app; app(['objectives'], prog_name='rewardlab')"
    )
    done = run(["-c", script], plugin_path)
    assert done.returncode == 0, done.stderr
    names, options, *table = done.stdout.splitlines()
    assert "'plugin_hinge'" in names and "'bradley_terry'" in names and options == "{'width': 1.0}"
    row = next(line for line in table if "plugin_hinge" in line)
    assert "width=1.0" in row and "a hinge on the reward gap" in row


def test_a_plugin_objective_trains(plugin_path, tiny_encoder_dir, tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": f"helpful kind {i}", "rejected": f"rude wrong {i}"} for i in range(40)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    args = ["--data", str(data), "--backbone", str(tiny_encoder_dir), "--output", str(out)]
    overrides = ["precision=fp32", "max_steps=2", "progress=false", "objective.args.width=0.5"]
    done = run(["-m", "rewardlab", "train", "--objective", "plugin-hinge", *args, *overrides], plugin_path)
    assert done.returncode == 0, done.stderr
    info = RewardModel.from_pretrained(out / "model").info
    assert info.objective == "plugin_hinge" and info.objective_args == {"width": 0.5}
