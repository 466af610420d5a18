"""A self-contained HTML page: the video beside its valence/arousal curves, in sync.

The video is embedded as a base64 ``data:video/mp4`` URI and the predictions as JSON; an
inline script draws the curves as SVG (no-face spans shaded), moves a cursor with the
video's ``currentTime`` (on every animation frame while playing, and on seeks), shows the
current values, and seeks the video where the chart is clicked. No external assets: the
file can be mailed or archived as is. ``#t=SECONDS`` in the address starts there.

The video must play in a browser: H.264 in MP4. :func:`browser_ready_video` keeps such a
file as it is and re-encodes anything else (through ``overlay.write_overlay_video`` with
the frames unchanged). A video larger than ``INLINE_LIMIT_BYTES`` (a long one) is linked
instead of embedded (:func:`page_video`): the page then plays it from beside the page (the
overlay, or a re-encode ``<name>.video.mp4``) or from its own path (``file://``), and says
so; the page itself stays small and is written without holding the video in memory.

For the tests the script leaves its state on ``<body>``: ``data-curves`` (polylines
drawn), ``data-video-width`` (set once the browser decoded the video), ``data-cursor-time``.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

from avstan.apply.overlay import write_overlay_video
from avstan.errors import AvstanError
from avstan.io import atomic_write_bytes

COLOURS = {"valence": "#1f77b4", "arousal": "#d62728"}
INLINE_LIMIT_BYTES = 64 * 2**20  # larger videos are linked, not embedded

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; }
.row { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
video { max-width: min(640px, 100%); background: #000; }
svg { border: 1px solid #ddd; cursor: crosshair; }
.legend span { margin-right: 1.2em; } .now { font: 1.1em monospace; margin: 0.5em 0; }
p.note { color: #555; max-width: 60em; }
"""

SCRIPT = """
(function () {
  const data = JSON.parse(document.getElementById("predictions").textContent);
  const video = document.getElementById("video");
  const svg = document.getElementById("chart");
  const ns = "http://www.w3.org/2000/svg";
  const W = 640, H = 300, left = 40, right = 10, top = 10, bottom = 30;
  const end = data.duration;
  const x = t => left + (W - left - right) * t / end;
  const y = v => top + (H - top - bottom) * (1 - v) / 2;
  function add(name, attributes, text) {
    const node = document.createElementNS(ns, name);
    for (const key in attributes) node.setAttribute(key, attributes[key]);
    if (text !== undefined) node.textContent = text;
    svg.appendChild(node);
    return node;
  }
  const step = data.times.length > 1 ? data.times[1] - data.times[0] : end;
  data.face_found.forEach(function (found, i) {
    if (!found) add("rect", {x: x(data.times[i]), y: top, width: x(step) - x(0),
                             height: H - top - bottom, fill: "#eee", class: "noface"});
  });
  [-1, -0.5, 0, 0.5, 1].forEach(function (v) {
    add("line", {x1: left, x2: W - right, y1: y(v), y2: y(v),
                 stroke: v === 0 ? "#999" : "#e5e5e5"});
    add("text", {x: left - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11}, v);
  });
  const ticks = Math.max(1, Math.ceil(end / 10));
  for (let t = 0; t <= end; t += ticks)
    add("text", {x: x(t), y: H - 10, "text-anchor": "middle", "font-size": 11}, t + " s");
  let curves = 0;
  for (const name in data.values) {
    const points = data.times.map((t, i) => x(t).toFixed(1) + "," + y(data.values[name][i])
                                  .toFixed(1)).join(" ");
    add("polyline", {points: points, fill: "none", stroke: data.colours[name],
                     "stroke-width": 1.8, class: "curve", "data-target": name});
    curves += 1;
  }
  const cursor = add("line", {id: "cursor", x1: x(0), x2: x(0), y1: top, y2: H - bottom,
                              stroke: "#000", "stroke-width": 1.5});
  document.body.dataset.curves = curves;
  const now = document.getElementById("now");
  function show() {
    const t = video.currentTime;
    cursor.setAttribute("x1", x(Math.min(t, end)));
    cursor.setAttribute("x2", x(Math.min(t, end)));
    let i = 0;  // the most recent step at or before t
    while (i + 1 < data.times.length && data.times[i + 1] <= t + 1e-6) i += 1;
    now.textContent = t.toFixed(2) + " s   " + Object.keys(data.values).map(
      name => name + " " + (data.values[name][i] >= 0 ? "+" : "") +
              data.values[name][i].toFixed(2)).join("   ") +
      (data.labels ? "   " + data.labels[i] : "") +
      (data.face_found[i] ? "" : "   (no face)");
    document.body.dataset.cursorTime = t.toFixed(3);
  }
  function follow() { show(); if (!video.paused) requestAnimationFrame(follow); }
  video.addEventListener("play", follow);
  video.addEventListener("seeked", show);
  video.addEventListener("timeupdate", show);
  video.addEventListener("loadeddata", function () {
    document.body.dataset.videoWidth = video.videoWidth;
  });
  video.addEventListener("loadedmetadata", function () {
    const start = /t=([0-9.]+)/.exec(location.hash);
    if (start) video.currentTime = parseFloat(start[1]);
  });
  svg.addEventListener("click", function (event) {
    const box = svg.getBoundingClientRect();
    const t = (event.clientX - box.left - left) / (W - left - right) * end;
    video.currentTime = Math.max(0, Math.min(end, t));
  });
  show();
})();
"""


def is_browser_ready(video: Path) -> bool:
    """Whether a browser plays ``video`` as it is: H.264 (with AAC or MP3 audio, or none)
    in MP4."""
    try:
        with av.open(str(video)) as container:
            formats = set(container.format.name.split(","))
            codecs = {s.type: s.codec_context.name for s in container.streams
                      if s.type in ("video", "audio")}
    except (av.error.FFmpegError, OSError) as exc:
        raise AvstanError(f"{video}: not a readable media file ({exc})") from None
    return (video.suffix.lower() in (".mp4", ".m4v") and "mp4" in formats
            and codecs.get("video") == "h264"
            and codecs.get("audio", "aac") in ("aac", "mp3", "mp3float"))


def browser_ready_video(video: str | Path, scratch: str | Path) -> bytes:
    """The bytes of an MP4 a browser plays: ``video`` itself when it is H.264 (with AAC or
    MP3 audio, or none) in MP4, else a re-encode written under ``scratch`` and removed."""
    video = Path(video)
    if is_browser_ready(video):
        return video.read_bytes()
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".reencode-") as folder:
        path = write_overlay_video(video, Path(folder) / "video.mp4", np.zeros(1),
                                   annotate=False)
        return path.read_bytes()


def page_video(video: Path, page_folder: Path, stem: str,
               limit: int | None = None) -> tuple[bytes | str, Path | None]:
    """What the page plays: the bytes to embed, or (above ``limit`` bytes) the address to
    link: a file beside the page by name, else the video's ``file://`` URI. Returns it with
    the file made for it (a re-encode ``<stem>.video.mp4`` beside the page), if any."""
    video = Path(video)
    limit = INLINE_LIMIT_BYTES if limit is None else limit
    if is_browser_ready(video):
        if video.stat().st_size <= limit:
            return video.read_bytes(), None
        if video.resolve().parent == Path(page_folder).resolve():
            return video.name, None
        return video.resolve().as_uri(), None
    linked = Path(page_folder) / f"{stem}.video.mp4"
    write_overlay_video(video, linked, np.zeros(1), annotate=False)
    if linked.stat().st_size <= limit:
        movie = linked.read_bytes()
        linked.unlink()
        return movie, None
    return linked.name, linked


def prediction_page_html(title: str, video_mp4: bytes | str, times: np.ndarray,
                         values: np.ndarray,
                         targets: Sequence[str], face_found: np.ndarray, duration: float,
                         note: str = "", colours: dict[str, str] | None = None,
                         labels: Sequence[str] | None = None) -> str:
    """The page as a string; ``values`` (N, K) on ``times`` (N,), ``duration`` in seconds;
    ``colours`` per target name (default: :data:`COLOURS`). ``video_mp4``: the bytes to
    embed, or the address (a string) of a video to link. ``labels`` (N): a text per step
    shown beside the current values (predict: the expression read at that step)."""
    colours = {**COLOURS, **(colours or {})}
    data = {
        "times": [round(float(t), 4) for t in times],
        "values": {t: [round(float(v), 5) for v in values[:, k]] for k, t in enumerate(targets)},
        "colours": {t: colours.get(t, "#333") for t in targets},
        "face_found": [bool(f) for f in face_found],
        "duration": float(duration),
    }
    if labels is not None:
        data["labels"] = [str(label) for label in labels]
    # "</" cannot close the script element from inside the JSON.
    payload = json.dumps(data).replace("</", "<\\/")
    legend = "".join(f"<span style='color:{colours.get(t, '#333')}'>&#9632; {html.escape(t)}"
                     "</span>" for t in targets)
    legend += "<span style='color:#999'>&#9632; no face</span>"
    if isinstance(video_mp4, str):
        source = html.escape(video_mp4, quote=True)
        linked = (f"<p class='note'>The video is linked, not embedded (it is long): "
                  f"<a href='{source}'>{html.escape(video_mp4)}</a>; keep this page next to "
                  "it.</p>")
    else:
        source = "data:video/mp4;base64," + base64.b64encode(video_mp4).decode()
        linked = ""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><div class='row'>"
        f"<video id='video' controls preload='auto' src='{source}'>"
        "</video><div><svg id='chart' width='640' height='300' viewBox='0 0 640 300'></svg>"
        f"<div class='legend'>{legend}</div><div class='now' id='now'></div></div></div>"
        + (f"<p class='note'>{html.escape(note)}</p>" if note else "") + linked
        + f"<script type='application/json' id='predictions'>{payload}</script>"
        f"<script>{SCRIPT}</script></body></html>")


def write_prediction_page(path: str | Path, title: str, video_mp4: bytes | str,
                          times: np.ndarray,
                          values: np.ndarray, targets: Sequence[str], face_found: np.ndarray,
                          duration: float, note: str = "", colours: dict[str, str] | None = None,
                          labels: Sequence[str] | None = None) -> Path:
    """Write the page atomically; returns ``path``."""
    path = Path(path)
    atomic_write_bytes(path, prediction_page_html(title, video_mp4, times, values, targets,
                                                  face_found, duration, note,
                                                  colours, labels).encode())
    return path
