"""Training reward models: config, batching and the loop (run folders, metrics and checkpoints are
:mod:`rewardlab.runs`, shared with policy runs)."""
