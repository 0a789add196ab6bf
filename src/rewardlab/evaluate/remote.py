"""A reward model behind HTTP, spoken to in OpenRLHF's remote reward-model protocol.

``POST URL {"query": [prompt + response, ...], "prompts": [prompt, ...]}`` answers
``{"rewards": [...]}`` (OpenRLHF's ``--remote_rm_url``; ``rewardlab serve`` answers it at
``/get_reward``). The protocol carries text only, so a conversation prompt must first be rendered
by the caller into the text the server expects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from rewardlab.data.records import Prompt


def reward_url(url: str) -> str:
    """``url`` as given, or with ``/get_reward`` added when it names only a server (no path)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"remote reward URL must be http(s)://HOST[:PORT][/PATH] (got {url!r})")
    return url.rstrip("/") + "/get_reward" if parts.path in ("", "/") else url


@dataclass
class RemoteScorer:
    """Rewards from an OpenRLHF-style endpoint, ``batch_size`` replies a request."""

    url: str
    batch_size: int = 64
    timeout_s: float = 120.0
    precision: str = "remote"

    def __post_init__(self) -> None:
        self.url = reward_url(self.url)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1 (got {self.batch_size})")

    def score(self, prompts: Sequence[Prompt], replies: Sequence[str]) -> list[float]:
        for index, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise ValueError(
                    f"prompt {index} is a conversation; OpenRLHF's protocol sends text "
                    "(render it with the server model's chat template first)"
                )
        rewards: list[float] = []
        with httpx.Client(timeout=self.timeout_s) as client:
            for start in range(0, len(prompts), self.batch_size):
                texts = list(prompts[start : start + self.batch_size])
                queries = [p + r for p, r in zip(texts, replies[start : start + self.batch_size], strict=True)]
                rewards += self._post(client, {"query": queries, "prompts": texts}, len(texts))
        return rewards

    def _post(self, client: httpx.Client, body: dict, expected: int) -> list[float]:
        try:
            response = client.post(self.url, json=body)
        except httpx.HTTPError as error:
            raise ValueError(f"{self.url}: cannot reach the reward server ({error})") from None
        if response.status_code != 200:
            raise ValueError(f"{self.url}: the reward server answered {response.status_code}: {response.text[:500]}")
        try:
            rewards = response.json()["rewards"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f'{self.url}: the answer has no "rewards" list: {response.text[:200]}') from None
        numeric = isinstance(rewards, list) and all(
            isinstance(r, int | float) and not isinstance(r, bool) for r in rewards
        )
        if not numeric or len(rewards) != expected or not all(math.isfinite(r) for r in rewards):
            raise ValueError(f"{self.url}: expected {expected} finite rewards, got {str(rewards)[:200]}")
        return [float(r) for r in rewards]
