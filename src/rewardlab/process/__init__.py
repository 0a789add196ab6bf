"""Process reward models (PRMs): a score for each step of a reasoning chain, not only for the whole reply.

``steps`` holds the maths (the step loss, how step scores make a chain's score), ``scoring`` scores chains
step by step with a reward model, ``trainer`` is the thin training loop and ``run`` one ``rewardlab prm
train`` run. The records are ``data.chains.StepChain``.
"""
