"""Images in and out: the embedded digit set, PNG files and sample grids.

Tensors are [N, C, H, W] in [-1, 1], the range the denoiser is trained on.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rewardlab.atomic import write_bytes_atomic


def digits() -> tuple[Tensor, Tensor]:
    """The 1,797 8×8 handwritten digits scikit-learn ships (UCI Optical Recognition of Handwritten Digits,
    Alpaydin & Kaynak 1998, CC BY 4.0): images in [-1, 1] ([N, 1, 8, 8]) and labels 0-9. No download."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.as_tensor(data.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    return images, torch.as_tensor(data.target, dtype=torch.long)


def to_uint8(images: Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] → [N, H, W, C] bytes."""
    return ((images.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def read_png(path: str | Path) -> Tensor:
    """One PNG (grey or RGB) as [C, H, W] in [-1, 1]."""
    from PIL import Image

    with Image.open(path) as image:
        array = np.array(image.convert("L") if image.mode in ("L", "LA", "I", "1", "P") else image.convert("RGB"))
    array = array[..., None] if array.ndim == 2 else array
    return torch.as_tensor(array, dtype=torch.float32).permute(2, 0, 1) / 127.5 - 1.0


def write_png(path: str | Path, image: Tensor) -> None:
    """One [C, H, W] image in [-1, 1] as a PNG, atomically."""
    from PIL import Image

    array = to_uint8(image.unsqueeze(0))[0]
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


def grid(images: Tensor, columns: int = 8, scale: int = 4, pad: int = 1) -> Tensor:
    """Images tiled in rows of ``columns``, each enlarged ``scale`` times (nearest), on a white border."""
    n, c, h, w = images.shape
    rows = -(-n // columns)
    big = images.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
    hh, ww = h * scale + pad, w * scale + pad
    canvas = torch.ones(c, rows * hh + pad, columns * ww + pad)
    for i in range(n):
        r, col = divmod(i, columns)
        canvas[:, pad + r * hh : pad + r * hh + h * scale, pad + col * ww : pad + col * ww + w * scale] = big[i]
    return canvas


def write_grid(path: str | Path, images: Tensor, columns: int = 8, scale: int = 4) -> None:
    """A PNG sample grid (the before/after pictures of the docs)."""
    write_png(path, grid(images, columns, scale))
