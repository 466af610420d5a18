"""Contact sheets of aligned crops with their landmarks, to check preprocessing at a glance.

Users of other toolkits lose weeks to silently wrong crops; one look at a sheet shows
whether the face is centred, upright and the same size in every step. Steps without a
face (which hold the nearest found crop) get a red frame.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from avstan.data.store import Recording
from avstan.errors import AvstanError
from avstan.io import atomic_write_bytes


def contact_sheet(recording: Recording, max_steps: int = 32, columns: int = 8,
                  scale: int = 2) -> Image.Image:
    """A grid of up to ``max_steps`` evenly spaced steps, landmarks drawn in green."""
    steps = np.unique(np.linspace(0, recording.num_steps - 1,
                                  min(max_steps, recording.num_steps)).round().astype(int))
    size = recording.crop_size * scale
    rows = -(-len(steps) // columns)
    sheet = Image.new("RGB", (columns * size, rows * size), "white")
    draw = ImageDraw.Draw(sheet)
    for index, step in enumerate(steps):
        left, top = (index % columns) * size, (index // columns) * size
        tile = Image.fromarray(recording.frames[step]).resize((size, size),
                                                              Image.Resampling.NEAREST)
        sheet.paste(tile, (left, top))
        if recording.landmarks is not None and recording.face_found[step]:
            for x, y in recording.landmarks[step]:
                cx, cy = left + (x + 0.5) * scale, top + (y + 0.5) * scale
                draw.ellipse((cx - 1, cy - 1, cx + 1, cy + 1), fill=(0, 255, 0))
        if not recording.face_found[step]:
            draw.rectangle((left, top, left + size - 1, top + size - 1), outline=(255, 0, 0),
                           width=3)
        draw.text((left + 3, top + 2), f"{recording.times[step]:.2f}s", fill=(255, 255, 0))
    return sheet


def write_contact_sheet(recording: Recording, path: str | Path) -> Path:
    path = Path(path)
    buffer = io.BytesIO()
    contact_sheet(recording).save(buffer, format="PNG")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise AvstanError(f"{path}: cannot write the preview ({exc.strerror})") from None
    return path
