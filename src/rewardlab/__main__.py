"""``python -m rewardlab`` (what ``torchrun`` launches for data-parallel training)."""

from rewardlab.cli import app

app()
