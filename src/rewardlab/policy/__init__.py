"""Preference-trained policies: DPO-family losses over log-probabilities, looked up by name.

The losses register themselves when :mod:`rewardlab.policy.losses` is imported, which the registry
does on the first lookup."""

from rewardlab.policy.losses import dpo_token_rewards
from rewardlab.policy.registry import (
    PolicyLoss,
    PolicyLossOutput,
    get_policy_loss,
    policy_loss_names,
    register_policy_loss,
)
from rewardlab.policy.reward_augmented import goal_conditioned_prompt, reward_augmented_pairs

__all__ = [
    "PolicyLoss",
    "PolicyLossOutput",
    "dpo_token_rewards",
    "get_policy_loss",
    "goal_conditioned_prompt",
    "policy_loss_names",
    "register_policy_loss",
    "reward_augmented_pairs",
]
