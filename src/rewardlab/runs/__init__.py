"""What every run shares, written once: config files and overrides (``config``), the run folder with
its claim, resume and overwrite rules (``folder``), metric logging (``metrics``) and trackers
(``trackers``), checkpoints (``checkpoint``), and loading and splitting the data (``data``).

Reward-model runs (:mod:`rewardlab.training`) and policy runs (:mod:`rewardlab.policy`) both stand on
it, so a rule about runs (what ``--resume`` may change, what ``--overwrite`` removes) holds for both.
Nothing is imported here: reading a config must not pull in torch.
"""
