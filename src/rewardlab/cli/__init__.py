"""The ``rewardlab`` command line: train, dpo, eval, compare, ensemble-errors, score, serve, overopt, sample-pairs,
data check, data curate and more (``rewardlab --help``).

One module per kind of command (``learn``, ``online``, ``measure``, ``use``, ``sample``, ``lists``, ``data``), all on
the one ``app`` of ``base``; each registers its commands when imported, so the order of the imports below is the
order ``rewardlab --help`` lists them in. Heavy libraries are imported inside the commands, when they run.
"""

# isort: off
from rewardlab.cli import learn, online, measure, use, sample, lists, data, curation  # noqa: F401  # registers the commands
from rewardlab.cli import synthesis, collect, process, distill, detect, pretrain, control, diffusion  # noqa: F401

# isort: on
from rewardlab.cli.base import app, data_app, user_errors
from rewardlab.cli.learn import cross_dataset, cv, dpo, train
from rewardlab.cli.lists import objectives, policy_losses, recipes
from rewardlab.cli.measure import SCORER_NAMES, compare, ensemble_errors, evaluate, length_removed
from rewardlab.cli.online import online_command
from rewardlab.cli.sample import daa_overopt, overopt, sample_pairs
from rewardlab.cli.use import export, score, serve_command

__all__ = [
    "SCORER_NAMES",
    "app",
    "compare",
    "cross_dataset",
    "cv",
    "daa_overopt",
    "data_app",
    "dpo",
    "ensemble_errors",
    "evaluate",
    "export",
    "length_removed",
    "objectives",
    "online_command",
    "overopt",
    "policy_losses",
    "recipes",
    "sample_pairs",
    "score",
    "serve_command",
    "train",
    "user_errors",
]
