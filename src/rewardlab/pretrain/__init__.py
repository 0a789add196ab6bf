"""Pretraining language models with human feedback (Korbak et al. 2023): MLE, filtering, conditional
training, unlikelihood, RWR and AWR on a scored corpus, for a small LM trained from scratch."""

from rewardlab.pretrain.objectives import (
    PRETRAIN_OBJECTIVES,
    PretrainObjective,
    TokenLossOutput,
    awr_loss,
    get_pretrain_objective,
    mle_loss,
    rwr_loss,
    unlikelihood_loss,
)

__all__ = [
    "PRETRAIN_OBJECTIVES",
    "PretrainObjective",
    "TokenLossOutput",
    "awr_loss",
    "get_pretrain_objective",
    "mle_loss",
    "rwr_loss",
    "unlikelihood_loss",
]
