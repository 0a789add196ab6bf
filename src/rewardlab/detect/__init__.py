"""Detecting an aligned LM's text with a reward model (ReMoDetect, Lee et al. 2024).

An aligned LM was trained to please a reward model, so a reward model tends to score its text above
human text: the reward itself is a detector, measured by AUROC (``auroc``). Tuning the reward model
further on "LM text ≻ human text" pairs, with human/LM mixed text ranked between the two and a term
that keeps its rewards near the starting model's (``tuning``), makes it a better one. ``records``
holds the detection file format; ``texts`` builds one from human answers and an LM's replies.
"""
