"""Alignment methods, one module each; each registers itself with ``rewardlab.diffusion.align.register_method``."""
