"""Contact sheets of aligned crops with their landmarks, to check preprocessing at a glance.

Users of other toolkits lose weeks to silently wrong crops; one look at a sheet shows
whether the face is centred, upright and the same size in every step. Steps without a
face (which hold the nearest found crop) get a red frame; crops aligned from the
detector's five points (the 68-point fit being implausible) an orange one, crops aligned
from the corpus's own landmarks a blue one, crops of an image in which the detector found
no face (the 68-point fit made inside the image's frame) a purple one. A line above the
grid names the detector and counts the steps by what they were aligned from.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from avstan.data.store import ALIGNED_FROM, Recording
from avstan.errors import AvstanError
from avstan.io import atomic_write_bytes

# frame colours by aligned_from code (no frame for the 68-point fit)
FRAME_COLOURS = {0: (255, 0, 0), 2: (255, 150, 0), 3: (40, 110, 255), 4: (170, 40, 220)}
HEADER_HEIGHT = 16


def sheet_caption(recording: Recording) -> str:
    """``detector yunet; 68-point fit 38, detector's points 2, no face 1`` (what the
    recording's crops were found and aligned with)."""
    detector = recording.face_detector or "unknown"
    if recording.aligned_from is None:
        return f"detector {detector}"
    counts = np.bincount(recording.aligned_from, minlength=len(ALIGNED_FROM))
    parts = [f"{ALIGNED_FROM[code]} {count}" for code, count in enumerate(counts)
             if count and code]
    if counts[0]:
        parts.append(f"no face {counts[0]}")
    return f"detector {detector}; " + ", ".join(parts)


def contact_sheet(recording: Recording, max_steps: int = 32, columns: int = 8,
                  scale: int = 2) -> Image.Image:
    """A grid of up to ``max_steps`` evenly spaced steps, landmarks drawn in green, under a
    line saying which detector and landmarks were used (:func:`sheet_caption`)."""
    steps = np.unique(np.linspace(0, recording.num_steps - 1,
                                  min(max_steps, recording.num_steps)).round().astype(int))
    size = recording.crop_size * scale
    rows = -(-len(steps) // columns)
    sheet = Image.new("RGB", (columns * size, rows * size + HEADER_HEIGHT), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((3, 2), sheet_caption(recording), fill=(0, 0, 0))
    codes = (recording.aligned_from if recording.aligned_from is not None
             else np.where(recording.face_found, 1, 0))
    for index, step in enumerate(steps):
        left = (index % columns) * size
        top = (index // columns) * size + HEADER_HEIGHT
        tile = Image.fromarray(recording.frames[step]).resize((size, size),
                                                              Image.Resampling.NEAREST)
        sheet.paste(tile, (left, top))
        if recording.landmarks is not None and recording.face_found[step]:
            for x, y in recording.landmarks[step]:
                cx, cy = left + (x + 0.5) * scale, top + (y + 0.5) * scale
                draw.ellipse((cx - 1, cy - 1, cx + 1, cy + 1), fill=(0, 255, 0))
        code = 0 if not recording.face_found[step] else int(codes[step])
        if code in FRAME_COLOURS:
            draw.rectangle((left, top, left + size - 1, top + size - 1),
                           outline=FRAME_COLOURS[code], width=3)
        label = (f"#{step}" if recording.image_names is not None  # a shard of images
                 else f"{recording.times[step]:.2f}s")
        draw.text((left + 3, top + 2), label, fill=(255, 255, 0))
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
