"""Distillation for preference alignment of small models: an aligned teacher guides a smaller student.

DCKD and ADPA (Gao et al. 2025, "Advantage-Guided Distillation for Preference Alignment in Small
Language Models"): the pure losses (:mod:`.losses`), the full-vocabulary reply distributions they read
(:mod:`.distributions`), a student cut from its teacher (:mod:`.student`), ADPA's rejected replies
sampled from the SFT student (:mod:`.student_samples`) and the training loop (:mod:`.trainer`), which
reuses the policy trainer's batching, clipping and checkpoints.
"""

from rewardlab.distill.losses import (
    DISTILL_METHODS,
    DistillLossOutput,
    LossWeights,
    adpa_loss,
    advantage_loss,
    dckd_loss,
    distillation_loss,
    masked_token_mean,
    teacher_advantages,
    token_forward_kl,
)

__all__ = [
    "DISTILL_METHODS",
    "DistillLossOutput",
    "LossWeights",
    "adpa_loss",
    "advantage_loss",
    "dckd_loss",
    "distillation_loss",
    "masked_token_mean",
    "teacher_advantages",
    "token_forward_kl",
]
