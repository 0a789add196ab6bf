"""rewardlab: learn, measure and use reward models from human preference data."""

import os

# Intel MKL picks kernels by memory alignment unless told otherwise, so two identical CPU runs can
# differ in the last bits and drift apart over training. Strict conditional numerical
# reproducibility makes seeded runs (and resumed ones) bitwise repeatable at no measurable cost
# here. It only takes effect when set before torch is first imported; a user's own value wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

# oneDNN, PyTorch's CPU matrix library, keeps a compiled kernel with its buffers for each of the last
# 1,024 shapes it met. Batches of varying length bring new shapes at almost every step, so that cache
# grows all through training: on MiniLM it took one epoch's peak memory from 2.3 to 3.4 GB, at no
# gain in speed (benchmarks/RESULTS.md). Read when oneDNN first runs; a user's own value wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

from rewardlab.allocator import keep_freed_memory
from rewardlab.api import train
from rewardlab.data import PreferencePair, load_preferences
from rewardlab.models.reward_model import RewardModel
from rewardlab.training.config import TrainConfig

keep_freed_memory()  # large tensors reuse freed memory instead of page-faulting fresh pages (allocator.py)

__all__ = ["PreferencePair", "RewardModel", "TrainConfig", "load_preferences", "train"]
__version__ = "0.1.0"
