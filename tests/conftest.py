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


@pytest.fixture(scope="module")
def one_thread():
    """One thread for a module of tiny convolutional models (the diffusion tests): their small convolutions gain
    nothing from a second thread, and on a busy two-core machine two OpenMP threads spin-wait on each other
    (20 training updates of a tiny UNet: 0.7 s of CPU on one thread, 61 s on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer ``BertModel`` directory with the real all-MiniLM-L6-v2 tokenizer."""
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="session")
def tiny_decoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer ``LlamaForCausalLM`` directory with a ChatML byte-level BPE tokenizer (vocab 500)."""
    return build_tiny_decoder(tmp_path_factory.mktemp("tiny-decoder"))
