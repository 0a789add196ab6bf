"""The per-user table of a pluralistic reward model, and how it is saved beside the Hugging Face files.

A pluralistic model (issue 33: PAL, MaxMin-RLHF, VPL, MiCRo) is an ordinary reward model whose head has
D outputs per reply, plus one row of parameters per annotator seen in training. The user model
(``rewards.pluralistic``) says how a row turns the D outputs into that user's reward, which row stands
for the whole population, and how a new user's row is fitted from a few of their labelled pairs.

On disk the table is two files beside ``model.safetensors``: ``users.safetensors`` (one tensor,
``rows``, of shape (U, row)) and ``users.json`` (the ids in row order and the user model's name), so
nothing is pickled and plain transformers still loads the folder (it reads the head's D outputs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from rewardlab.atomic import write_files_atomic
from rewardlab.data.records import PreferencePair, Prompt
from rewardlab.rewards.pluralistic import UserModel, user_model

ROWS_FILE = "users.safetensors"
IDS_FILE = "users.json"
POPULATION = -1
"""The row index that stands for the population (a pair whose annotator the table does not know)."""


@dataclass(frozen=True)
class UserExamples:
    """A new user's k labelled pairs, from which their row is fitted (heads frozen) before scoring."""

    prompts: Sequence[Prompt]
    chosen: Sequence[str]
    rejected: Sequence[str]

    def __post_init__(self) -> None:
        sizes = {len(self.prompts), len(self.chosen), len(self.rejected)}
        if len(sizes) != 1:
            raise ValueError(
                f"user examples need as many prompts as chosen and rejected replies "
                f"(got {len(self.prompts)}, {len(self.chosen)}, {len(self.rejected)})"
            )
        if not self.prompts:
            raise ValueError("user examples need at least one labelled pair (prompt, chosen, rejected)")

    @classmethod
    def from_pairs(cls, pairs: Sequence[PreferencePair], where: str = "user examples") -> UserExamples:
        """A new user's examples from loaded pairs; a tie has no order to learn from and is refused."""
        if tie := next((p for p in pairs if p.tie), None):
            raise ValueError(f"{tie.source or where}: a tie says nothing of what the user prefers; leave it out")
        return cls([p.prompt for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs])


class UserTable(torch.nn.Module):
    """One trainable row per known user id (sorted ids, row i for ``ids[i]``), and the user model."""

    def __init__(self, ids: Sequence[str], rows: torch.Tensor, user_model_name: str) -> None:
        super().__init__()
        if len(ids) != len(rows) or len(set(ids)) != len(ids):
            raise ValueError(f"a user table needs one row per distinct id (got {len(ids)} ids, {len(rows)} rows)")
        self.ids = list(ids)
        self.user_model_name = user_model_name
        self.rows = torch.nn.Parameter(rows.detach().float().clone())
        self._index = {name: i for i, name in enumerate(self.ids)}

    @classmethod
    def new(cls, ids: Sequence[str], outputs: int, user_model_name: str, seed: int) -> UserTable:
        """A fresh table for ``ids`` (sorted, so the same data gives the same rows), initialised by the user
        model from a generator seeded with the run's seed."""
        ids = sorted(set(ids))
        generator = torch.Generator().manual_seed(seed)
        rows = user_model(user_model_name).init(len(ids), outputs, generator)
        return cls(ids, rows, user_model_name)

    @property
    def user_model(self) -> UserModel:
        return user_model(self.user_model_name)

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, user: str | None) -> int:
        """The row of ``user``, or ``POPULATION`` for an id the table does not know (or none)."""
        return self._index.get(user, POPULATION) if user is not None else POPULATION

    def gather(self, indices: Sequence[int]) -> torch.Tensor:
        """(N, row) rows for row indices, ``POPULATION`` giving the population row; differentiable in the table."""
        index = torch.tensor(list(indices), dtype=torch.long, device=self.rows.device)
        known = index >= 0
        if bool(known.all()):
            return self.rows[index]
        population = self.population().unsqueeze(0).expand(len(index), -1)
        return torch.where(known.unsqueeze(-1), self.rows[index.clamp(min=0)], population)

    def population(self) -> torch.Tensor:
        """The row that scores for any user (the user model's summary of the table)."""
        return self.user_model.population(self.rows)

    def row(self, user: str) -> torch.Tensor:
        """The row of a known user; an unknown id is refused with how many the table knows."""
        if user not in self._index:
            shown = ", ".join(self.ids[:5]) + (", ..." if len(self.ids) > 5 else "")
            raise ValueError(
                f"unknown user {user!r}: this model knows {len(self.ids)} users ({shown}); "
                "leave the user out to score for the population, or fit a new user from their labelled pairs "
                "(--user-examples, or user_examples in a request)"
            )
        return self.rows[self._index[user]]

    # -- files ---------------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> None:
        """``users.safetensors`` and ``users.json`` into ``folder``, both or neither."""
        folder = Path(folder)
        meta = {"user_model": self.user_model_name, "ids": self.ids}
        write_files_atomic(
            {
                folder / ROWS_FILE: save({"rows": self.rows.detach().cpu().contiguous()}),
                folder / IDS_FILE: json.dumps(meta, indent=1, ensure_ascii=False) + "\n",
            }
        )

    @classmethod
    def load(cls, folder: str | Path) -> UserTable:
        """The table saved in ``folder``; a missing or inconsistent file is named."""
        folder = Path(folder)
        for name in (ROWS_FILE, IDS_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(
                    f"{folder}: a pluralistic reward model needs {name} beside its weights, and it is missing"
                )
        try:
            meta = json.loads((folder / IDS_FILE).read_text(encoding="utf-8"))
            ids, name = meta["ids"], meta["user_model"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{folder / IDS_FILE}: not a user list ({error})") from None
        rows = load_file(folder / ROWS_FILE).get("rows")
        if rows is None or rows.dim() != 2 or len(rows) != len(ids):
            shape = None if rows is None else tuple(rows.shape)
            raise ValueError(
                f"{folder / ROWS_FILE}: expected a tensor 'rows' with one row per id ({len(ids)}), got {shape}"
            )
        return cls([str(i) for i in ids], rows, str(name))
