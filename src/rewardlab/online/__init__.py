"""Online and iterative alignment: rounds of generate → judge → pair → update (``rewardlab online``).

``run_online(load_online_config(path, overrides))`` runs them; each round is saved in ``round-N/``
of the run folder and the report in ``report.md`` / ``report.json``."""

from rewardlab.online.config import OnlineConfig, load_online_config
from rewardlab.online.rounds import OnlineOutput, run_online

__all__ = ["OnlineConfig", "OnlineOutput", "load_online_config", "run_online"]
