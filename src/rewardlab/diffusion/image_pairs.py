"""Image preference pairs as users bring them: a JSON-lines file, one pair a line, naming two PNG files.

    {"chosen": "images/a.png", "rejected": "images/b.png", "condition": 3, "user": "annotator-7"}

Paths are relative to the folder of the JSON-lines file, so a folder of pairs can be moved or shared whole.
``condition`` (an integer class label) and ``user`` (an annotator id) are optional, but a file that gives one
on some lines gives it on every line: a reward model or a conditional denoiser cannot use a label that half
the pairs lack. Every problem is reported as ``file:line: field: what is wrong`` and nothing is returned.

``simulate_pairs`` plays an annotator whose reward is known, so a reward model trained from the file it
writes can be checked against the truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rewardlab.atomic import atomic_directory
from rewardlab.diffusion.align import ImageReward
from rewardlab.diffusion.images import read_png, write_png

PAIRS_FILE = "pairs.jsonl"
OPTIONAL_FIELDS = ("condition", "user")


@dataclass(frozen=True)
class ImagePairs:
    """N preference pairs: ``chosen[i]`` was preferred to ``rejected[i]`` ([N, C, H, W] in [-1, 1]);
    ``conditions`` [N] class labels and ``users`` N annotator ids when the file gives them."""

    chosen: Tensor
    rejected: Tensor
    conditions: Tensor | None = None
    users: list[str] | None = None

    def __post_init__(self) -> None:
        if self.chosen.dim() != 4 or self.chosen.shape != self.rejected.shape:
            raise ValueError(
                f"chosen and rejected must both be [N, C, H, W] of one shape "
                f"(got {tuple(self.chosen.shape)} and {tuple(self.rejected.shape)})"
            )
        n = len(self.chosen)
        if self.conditions is not None and self.conditions.shape != (n,):
            raise ValueError(f"conditions must have one label per pair ({n}), got shape {tuple(self.conditions.shape)}")
        if self.users is not None and len(self.users) != n:
            raise ValueError(f"users must have one id per pair ({n}), got {len(self.users)}")

    def __len__(self) -> int:
        return len(self.chosen)

    def rows(self, index: Tensor) -> ImagePairs:
        """The pairs ``index`` selects (a split, a batch)."""
        users = None if self.users is None else [self.users[i] for i in index.tolist()]
        conditions = None if self.conditions is None else self.conditions[index]
        return ImagePairs(self.chosen[index], self.rejected[index], conditions, users)


def read_image_pairs(path: str | Path) -> ImagePairs:
    """The pairs of the JSON-lines file ``path`` (blank lines skipped); ValueError naming file:line:field
    on the first bad line, missing or unreadable PNG, or PNG whose shape differs from the first one read."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such image-pairs file")
    folder = path.parent
    chosen: list[Tensor] = []
    rejected: list[Tensor] = []
    extras: dict[str, list] = {name: [] for name in OPTIONAL_FIELDS}
    present: dict[str, bool] = {}
    shape: tuple[int, ...] | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            kind = type(row).__name__
            raise ValueError(f"{where}: a pair must be a JSON object with chosen and rejected (got {kind})")
        for name, images in (("chosen", chosen), ("rejected", rejected)):
            image = _read_image(row, name, folder, where)
            if shape is None:
                shape = tuple(image.shape)
            elif tuple(image.shape) != shape:
                raise ValueError(f"{where}: {name}: image shape {tuple(image.shape)} differs from the first "
                                 f"image's {shape} (all images must have one shape)")  # fmt: skip
            images.append(image)
        for name in OPTIONAL_FIELDS:
            has = name in row and row[name] is not None
            if present.setdefault(name, has) != has:
                given = "gives" if has else "lacks"
                raise ValueError(f"{where}: {name}: this line {given} it and earlier lines do not (or the reverse); "
                                 f"give {name} on every line or on none")  # fmt: skip
            if has:
                extras[name].append(_check_optional(name, row[name], where))
    if not chosen:
        raise ValueError(f"{path}: no pairs (the file is empty)")
    conditions = torch.tensor(extras["condition"], dtype=torch.long) if present.get("condition") else None
    users = extras["user"] if present.get("user") else None
    return ImagePairs(torch.stack(chosen), torch.stack(rejected), conditions, users)


def _read_image(row: dict, name: str, folder: Path, where: str) -> Tensor:
    if name not in row:
        raise ValueError(f"{where}: {name}: missing (each pair needs chosen and rejected PNG paths)")
    value = row[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: {name}: must be a PNG path (got {value!r})")
    file = folder / value
    if not file.is_file():
        raise ValueError(f"{where}: {name}: no such file {file}")
    try:
        return read_png(file)
    except OSError as error:  # PIL's UnidentifiedImageError is an OSError
        raise ValueError(f"{where}: {name}: {file} is not a readable image ({error})") from None


def _check_optional(name: str, value: object, where: str) -> int | str:
    if name == "condition" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ValueError(f"{where}: condition: must be a non-negative integer class label (got {value!r})")
    if name == "user" and not isinstance(value, str):
        raise ValueError(f"{where}: user: must be a string annotator id (got {value!r})")
    return value  # type: ignore[return-value]


def write_image_pairs(
    folder: str | Path,
    chosen: Tensor,
    rejected: Tensor,
    conditions: Tensor | None = None,
    users: list[str] | None = None,
) -> Path:
    """Write the pairs as ``folder/images/*.png`` and ``folder/pairs.jsonl``, all or nothing (the folder is
    replaced whole); returns the JSON-lines file's path. PNG stores 8 bits, so images come back rounded to
    the nearest of 256 levels."""
    pairs = ImagePairs(chosen, rejected, conditions, users)  # checks the shapes
    with atomic_directory(Path(folder)) as tmp:
        (tmp / "images").mkdir()
        lines = []
        for i in range(len(pairs)):
            stem = f"images/{i:06d}"
            row: dict[str, object] = {"chosen": f"{stem}-chosen.png", "rejected": f"{stem}-rejected.png"}
            write_png(tmp / str(row["chosen"]), pairs.chosen[i])
            write_png(tmp / str(row["rejected"]), pairs.rejected[i])
            if pairs.conditions is not None:
                row["condition"] = int(pairs.conditions[i])
            if pairs.users is not None:
                row["user"] = pairs.users[i]
            lines.append(json.dumps(row) + "\n")
        (tmp / PAIRS_FILE).write_text("".join(lines), encoding="utf-8")
    return Path(folder) / PAIRS_FILE


def preference_labels(
    reward_a: Tensor, reward_b: Tensor, temperature: float, generator: torch.Generator | None = None
) -> Tensor:
    """True where a is preferred, sampled from Bradley-Terry on the known reward (Bradley & Terry 1952):

        P(a ≻ b) = σ((r(a) - r(b)) / T)

    T = 0 is the noiseless annotator (a wins exactly when r(a) > r(b); a tie goes to a)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (got {temperature})")
    if temperature == 0:
        return reward_a >= reward_b
    p = torch.sigmoid((reward_a - reward_b) / temperature)
    return torch.rand(p.shape, generator=generator) < p


@torch.no_grad()
def simulate_pairs(
    images_a: Tensor,
    images_b: Tensor,
    reward: ImageReward,
    temperature: float,
    generator: torch.Generator | None = None,
) -> ImagePairs:
    """An annotator whose reward is known labels each pair (images_a[i], images_b[i]) by ``preference_labels``."""
    if images_a.shape != images_b.shape:
        raise ValueError(f"images_a and images_b must have one shape (got {tuple(images_a.shape)} "
                         f"and {tuple(images_b.shape)})")  # fmt: skip
    a_wins = preference_labels(reward(images_a), reward(images_b), temperature, generator)
    mask = a_wins.view(-1, *([1] * (images_a.dim() - 1)))
    return ImagePairs(torch.where(mask, images_a, images_b), torch.where(mask, images_b, images_a))
