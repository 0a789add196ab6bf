"""Training reward models: config, batching, checkpoints and the loop."""
