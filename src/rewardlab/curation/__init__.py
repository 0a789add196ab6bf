"""Noisy preference labels: measure each pair's strength with an ensemble, then flip, drop or soften
the doubtful ones, or send them to people (``rewardlab data strength | curate | review-queue``).

Reads ``data`` (the rows), ``models`` (the judges) and ``evaluate`` (report helpers); the CLI calls it.
"""

from rewardlab.curation.curate import ACTIONS, METHODS, Decision, curriculum_order, decide
from rewardlab.curation.noise import FlagQuality, flag_quality, flip_pair, inject_flips
from rewardlab.curation.peer import judge_margins, peer_halves
from rewardlab.curation.review_queue import gold_errors, review_order, review_priority
from rewardlab.curation.run import curate_data, peer_halves_data, review_queue_data, strength_data
from rewardlab.curation.self_consuming import SelfConsumingConfig, curated_distribution, run_self_consuming
from rewardlab.curation.strength import Strength, preference_strength, score_members, soft_label
from rewardlab.curation.synthesis import SynthesisConfig, synthesize
from rewardlab.curation.synthesis_data import synthesize_data

__all__ = [
    "ACTIONS",
    "METHODS",
    "Decision",
    "FlagQuality",
    "SelfConsumingConfig",
    "Strength",
    "SynthesisConfig",
    "curate_data",
    "curated_distribution",
    "curriculum_order",
    "decide",
    "flag_quality",
    "flip_pair",
    "gold_errors",
    "inject_flips",
    "judge_margins",
    "peer_halves",
    "peer_halves_data",
    "preference_strength",
    "review_order",
    "review_priority",
    "review_queue_data",
    "run_self_consuming",
    "score_members",
    "soft_label",
    "strength_data",
    "synthesize",
    "synthesize_data",
]
