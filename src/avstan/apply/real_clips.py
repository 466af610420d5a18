"""The packaged real-face model on real clips: what ``make demo`` ends with.

:func:`predict_real_clips` runs ``avstan predict`` with the packaged model
(``models.packaged``) on the two CREMA-D clips shipped in ``avstan/apply/demo_clips/``
(one actor, the same sentence said happily and angrily), writing each clip's CSV, curve
plot and HTML page, and returns a small table: each clip's expression, its circumplex point,
the model's mean valence/arousal over the steps with a face and, for a model with an
expression head (the packaged one), the expression it read: the class with the highest mean
probability over those steps, with that probability. The demo puts it in its report
(``experiments.demo``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from avstan.apply.predict import most_probable_expression, predict_videos
from avstan.data.corpora.acted import CIRCUMPLEX
from avstan.data.corpora.cremad import EMOTIONS as CREMAD_EMOTIONS
from avstan.evaluation.html_report import image_html, paragraph
from avstan.models.packaged import DEFAULT_PACKAGED_MODEL, packaged_model_path


@dataclass
class RealClipsResult:
    """The markdown table and the report's HTML parts of the real-clip step."""

    table: str
    html: list[str] = field(default_factory=list)
    pages: list[Path] = field(default_factory=list)


def demo_clip_folder() -> Path:
    return Path(str(resources.files("avstan.apply") / "demo_clips"))


def predict_real_clips(output: str | Path, model: str | Path | None = None,
                       clips: str | Path | None = None, progress: bool = True,
                       log: Callable[[str], None] = print) -> RealClipsResult:
    """Predict the clips (default: the shipped CREMA-D pair) with ``model`` (default: the
    packaged real-face model) into ``output``; existing outputs are replaced."""
    output = Path(output)
    model_path = Path(model) if model is not None else packaged_model_path()
    folder = Path(clips) if clips is not None else demo_clip_folder()
    done, failed = predict_videos(model_path, folder, output, overwrite=True, html=True,
                                  progress=progress, log=log)
    name = DEFAULT_PACKAGED_MODEL if model is None else str(model_path)
    lines = [f"The packaged real-face model ({name}) on real video: "
             f"`avstan predict` on {len(done)} CREMA-D clips (one actor, one sentence; "
             "mean over the steps with a face, after the model's post-processing: its "
             "fixed smoothing and its calibration).", "",
             "| clip | expression | circumplex point (V / A) | predicted mean (V / A) "
             "| expression read (mean probability) |",
             "|---|---|---|---|---|"]
    html = []
    for prediction in sorted(done, key=lambda p: p.name):
        category = clip_category(prediction.name)
        point = CIRCUMPLEX.get(category) if category else None
        found = prediction.face_found.astype(bool)
        means = (prediction.values[found].mean(axis=0) if found.any()
                 else np.full(len(prediction.targets), np.nan))
        shown = " / ".join(f"{v:+.2f}" for v in means)
        expected = " / ".join(f"{v:+.2f}" for v in point) if point else "—"
        lines.append(f"| {prediction.name} | {category or '—'} | {expected} | {shown} "
                     f"| {expression_read(prediction.expressions, found)} |")
        html.append(image_html(prediction.plot_path, f"{prediction.name} ({category}): "
                               "predicted valence and arousal over time"))
    for video, reason in failed:
        lines.append(f"| {video.name} | failed: {reason} | | | |")
    html.insert(0, paragraph(lines[0]))
    return RealClipsResult("\n".join(lines), html,
                           [p.html_path for p in done if p.html_path is not None])


def expression_read(probabilities: np.ndarray | None, found: np.ndarray) -> str:
    """The class with the highest mean probability over the steps with a face, and that
    probability ("—" for a model without an expression head, or no face)."""
    if probabilities is None or not found.any():
        return "—"
    name, probability = most_probable_expression(probabilities[found].mean(axis=0))
    return f"{name} ({probability:.2f})"


def clip_category(name: str) -> str | None:
    """The expression of a CREMA-D clip name ``AAAA_SSS_EEE_LL``, as the table names it."""
    parts = name.split("_")
    return CREMAD_EMOTIONS.get(parts[2]) if len(parts) >= 3 else None
