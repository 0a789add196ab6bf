"""Rewards for control agents, learned from preferences between segments of their behaviour: gridworld MDPs
whose true reward is known, Gymnasium environments, preference models, policies trained on learned rewards,
planning for risk, and rewards a language model shapes (``docs/control/README.md``)."""
