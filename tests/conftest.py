"""Shared fixtures: tiny offline models, and a hub that cannot be reached.

The offline switches are set at import, before any test imports transformers, so a test that
asks for a model by hub name fails at once instead of trying the network.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from pathlib import Path

import pytest
import torch
from tiny_models import build_tiny_decoder, build_tiny_encoder

import rewardlab

# before anything computes (MKL reads its setting at the first matrix product): bitwise-repeatable
# CPU maths and rewardlab's allocator setting, as rewardlab's own runs have them
rewardlab.tune_cpu()

# Tiny models gain nothing from many threads, and parallel test workers would oversubscribe.
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer ``BertModel`` directory with the real all-MiniLM-L6-v2 tokenizer."""
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="session")
def tiny_decoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer ``LlamaForCausalLM`` directory with a ChatML byte-level BPE tokenizer (vocab 500)."""
    return build_tiny_decoder(tmp_path_factory.mktemp("tiny-decoder"))
