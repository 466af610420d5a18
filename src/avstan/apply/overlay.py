"""The original video with the model's attention and the current valence/arousal drawn on it.

:func:`write_overlay_video` decodes the video at its own frame rate and encodes an H.264
MP4 (PyAV's libx264, yuv420p; the audio track, if any, re-encoded to AAC). Each output
frame shows the most recent step at or before its timestamp:

* **attention** (models with an attention branch, steps with a face): the step's map,
  which lives on the S×S face crop, is warped back into the frame through the step's
  alignment matrix (frame pixels → crop pixels; each frame pixel samples the map where the
  matrix sends it), scaled to its own maximum and blended as a colour map over the crop's
  footprint, at opacity ``alpha`` where the map peaks and 0.3·``alpha`` where it is
  lowest. A uniform map is therefore an even tint over the face.
* **values**: a panel with the time, each target's value as text and a bar from 0 (right
  positive, left negative), and "no face" on steps where none was found (their values are
  the interpolated ones of the CSV).

With ``people`` (``predict --all-faces``) each person's box is drawn in its own colour
with the person's label and current values above it, instead of the single panel.

With ``annotate=False`` the frames pass through unchanged: the plain H.264 re-encode the
HTML page uses when a video cannot play in a browser as it is.

The file is written under a temporary name in the output folder and renamed when
complete, so a failure leaves nothing behind.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from avstan.data.video import decoded_frames, open_media
from avstan.errors import AvstanError
from avstan.io import atomic_path

TIME_BASE = Fraction(1, 1000)  # milliseconds: keeps variable frame rates as they are
BAR_COLOURS = {"positive": (80, 200, 120), "negative": (230, 90, 80)}
# one colour per person of --all-faces (matplotlib's tab10)
PERSON_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
                  (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
                  (188, 189, 34), (23, 190, 207)]


def colour_table(name: str = "inferno") -> np.ndarray:
    """(256, 3) float32 RGB of a matplotlib colour map."""
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)


def warp_to_frame(crop_map: np.ndarray, matrix: np.ndarray, width: int, height: int
                  ) -> np.ndarray:
    """Sample an (S, S) crop-space map at every pixel of a (height, width) frame: pixel p
    takes the map's (bilinear) value at ``matrix @ (p, 1)``; 0 outside the crop."""
    matrix = np.asarray(matrix, np.float64)
    # PIL puts pixel centres at +0.5 (it samples the input at D·(p + ½) − ½); ours, like
    # dlib's landmarks, are at integers, so shift the translation to match.
    data = matrix.copy()
    data[:, 2] += 0.5 - matrix[:, :2] @ [0.5, 0.5]
    image = Image.fromarray(np.ascontiguousarray(crop_map, dtype=np.float32), mode="F")
    warped = image.transform((width, height), Image.Transform.AFFINE, data=tuple(data.ravel()),
                             resample=Image.Resampling.BILINEAR, fillcolor=0.0)
    return np.asarray(warped)


def heat_layer(attention: np.ndarray, matrix: np.ndarray, width: int, height: int,
               colours: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(1 − opacity (H, W, 1), opacity · colour (H, W, 3)) of one step's attention map over
    the frame: blending is then ``frame · first + second``."""
    peak = float(attention.max())
    scaled = attention / peak if peak > 0 else np.zeros_like(attention)
    value = warp_to_frame(scaled, matrix, width, height)
    footprint = warp_to_frame(np.ones_like(scaled), matrix, width, height)
    level = np.clip(value / np.maximum(footprint, 1e-6), 0, 1)
    colour = colours[(level * 255).astype(np.uint8)]
    # Less attention, less tint: the face stays visible where the map is low.
    opacity = (alpha * footprint * (0.3 + 0.7 * level))[..., None].astype(np.float32)
    return 1.0 - opacity, opacity * colour


def draw_values(image: Image.Image, time: float, values: Sequence[float],
                targets: Sequence[str], face_found: bool, label: str | None = None) -> None:
    """The time, each target's value and a bar, and a no-face note, bottom left; ``label``
    (predict: the expression the model's head reads at this step) on a last line."""
    size = max(11, image.height // 30)
    font = _font(size)
    bar = 5 * size
    rows = [f"{time:6.2f} s" + ("" if face_found else "   no face")]
    rows += [f"{t:<8} {v:+.2f}" for t, v in zip(targets, values, strict=True)]
    rows += [label] if label else []
    line = int(size * 1.35)
    left, top = size // 2, image.height - line * len(rows) - size // 2
    text_width = int(max(ImageDraw.Draw(image).textlength(r, font=font) for r in rows))
    draw = ImageDraw.Draw(image, "RGBA")
    draw.rectangle((left - 4, top - 4, left + text_width + bar + 3 * size // 2 + 4,
                    image.height - 4), fill=(0, 0, 0, 150))
    for row, text in enumerate(rows):
        y = top + row * line
        draw.text((left, y), text, fill=(255, 255, 255), font=font)
        if row == 0 or row > len(values):  # the time line and the label have no bar
            continue
        value = float(np.clip(values[row - 1], -1, 1))
        centre = left + text_width + size + bar // 2
        end = centre + value * bar / 2
        draw.rectangle((centre - bar // 2, y + 2, centre + bar // 2, y + size - 1),
                       outline=(160, 160, 160))
        draw.rectangle((min(centre, end), y + 2, max(centre, end), y + size - 1),
                       fill=BAR_COLOURS["positive" if value >= 0 else "negative"])


def draw_people(image: Image.Image, step: int, people, targets: Sequence[str]) -> None:
    """Each person's box at ``step`` (when seen there) with its label and values."""
    size = max(11, image.height // 40)
    font = _font(size)
    draw = ImageDraw.Draw(image, "RGBA")
    for index, (label, boxes, values) in enumerate(people):
        box = boxes[step]
        if not np.isfinite(box).all():
            continue
        colour = PERSON_COLOURS[index % len(PERSON_COLOURS)]
        left, top, right, bottom = (float(v) for v in box)
        draw.rectangle((left, top, right, bottom), outline=colour, width=max(2, size // 5))
        text = label + "  " + "  ".join(f"{t[0]} {v:+.2f}" for t, v in
                                        zip(targets, values[step], strict=True))
        width = draw.textlength(text, font=font)
        y = max(0.0, top - size - 6)
        draw.rectangle((left, y, left + width + 6, y + size + 4), fill=(*colour, 190))
        draw.text((left + 3, y + 2), text, fill=(255, 255, 255), font=font)


def write_overlay_video(video: str | Path, output: str | Path, times: np.ndarray,
                        values: np.ndarray | None = None, targets: Sequence[str] = (),
                        face_found: np.ndarray | None = None,
                        attention: np.ndarray | None = None,
                        matrices: np.ndarray | None = None, alpha: float = 0.4,
                        annotate: bool = True, people=None,
                        labels: Sequence[str] | None = None) -> Path:
    """Write the annotated MP4 (see the module docstring); returns ``output``.

    ``times`` (N,): step times, seconds from the first frame; ``values`` (N, K);
    ``face_found`` (N,); ``attention`` (N, S, S) and ``matrices`` (N, 2, 3) or None;
    ``people``: a list of (label, boxes (N, 4) frame pixels with NaN where absent, values
    (N, K)) drawn instead of ``values``; ``labels`` (N): a text per step drawn under the
    values (predict: the expression read).
    """
    video, output = Path(video), Path(output)
    times = np.asarray(times, dtype=np.float64)
    colours = colour_table()
    try:
        with atomic_path(output, suffix=".mp4") as temporary, \
                open_media(str(video), video) as source, \
                av.open(str(temporary), mode="w", format="mp4") as sink:
            _encode(source, sink, video, times, values, targets, face_found, attention,
                    matrices, alpha, annotate, colours, people, labels)
    except av.error.FFmpegError as exc:
        raise AvstanError(f"{output}: cannot encode the video ({exc}); "
                          "check the input video") from None
    return output


def _encode(source, sink, where: Path, times, values, targets, face_found, attention,
            matrices, alpha, annotate, colours, people=None, labels=None) -> None:
    video_stream = None
    audio = _audio_frames(where)
    first_audio = next(audio, None)
    audio_out = resampler = fifo = None
    if first_audio is not None:
        rate = first_audio.sample_rate
        audio_out = sink.add_stream("aac", rate=rate)
        audio_out.layout = "mono" if len(first_audio.layout.channels) == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=audio_out.layout.name, rate=rate)
        fifo = av.AudioFifo()
    pending = first_audio
    samples_written = 0
    layers: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    first_time, last_pts = None, -1

    def encode_audio(until: float | None) -> None:
        nonlocal pending, samples_written
        while pending is not None and (until is None or (pending.time or 0.0) <= until):
            for chunk in resampler.resample(pending):
                chunk.pts = None  # the output counts its own samples
                fifo.write(chunk)
            pending = next(audio, None)
            while fifo.samples >= audio_out.codec_context.frame_size:
                samples_written = _write_audio(sink, audio_out, fifo.read(
                    audio_out.codec_context.frame_size), samples_written)
        if until is None:
            for chunk in resampler.resample(None):
                chunk.pts = None
                fifo.write(chunk)
            if fifo.samples:
                samples_written = _write_audio(sink, audio_out, fifo.read(), samples_written)
            sink.mux(audio_out.encode(None))

    for time, frame in decoded_frames(source, where):
        if first_time is None:
            first_time = time
            width, height = frame.width - frame.width % 2, frame.height - frame.height % 2
            video_stream = sink.add_stream("libx264", rate=_frame_rate(source))
            video_stream.width, video_stream.height = width, height
            video_stream.pix_fmt = "yuv420p"
            video_stream.codec_context.time_base = TIME_BASE
            video_stream.options = {"preset": "veryfast", "crf": "20"}
        elapsed = time - first_time
        pts = int(round(elapsed / TIME_BASE))
        if pts <= last_pts:
            continue  # a repeated timestamp
        last_pts = pts
        image = frame.to_ndarray(format="rgb24")[:height, :width]
        if annotate:
            image = _annotate(image, elapsed, times, values, targets, face_found, attention,
                              matrices, alpha, colours, layers, people, labels)
        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        out.pts, out.time_base = pts, TIME_BASE
        sink.mux(video_stream.encode(out))
        if audio_out is not None:
            encode_audio(elapsed)
    if video_stream is None:
        raise AvstanError(f"{where}: no video frame could be decoded")
    sink.mux(video_stream.encode(None))
    if audio_out is not None:
        encode_audio(None)


def _annotate(image, elapsed, times, values, targets, face_found, attention, matrices, alpha,
              colours, layers, people=None, labels=None) -> np.ndarray:
    step = max(0, int(np.searchsorted(times, elapsed + 1e-6, side="right")) - 1)
    if people is not None:
        picture = Image.fromarray(image)
        draw_people(picture, step, people, targets)
        return np.asarray(picture)
    found = True if face_found is None else bool(face_found[step])
    if attention is not None and matrices is not None and found \
            and np.isfinite(matrices[step]).all():
        if step not in layers:
            layers.clear()  # steps come in order: one cached layer is enough
            layers[step] = heat_layer(attention[step], matrices[step], image.shape[1],
                                      image.shape[0], colours, alpha)
        keep, tint = layers[step]
        image = (image * keep + tint).astype(np.uint8)
    if values is not None:
        picture = Image.fromarray(image)
        draw_values(picture, elapsed, values[step], targets, found,
                    None if labels is None else labels[step])
        image = np.asarray(picture)
    return image


@functools.lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _frame_rate(container) -> Fraction:
    rate = container.streams.video[0].average_rate
    return Fraction(rate) if rate else Fraction(25)


def _audio_frames(path: Path) -> Iterator[av.AudioFrame]:
    """The audio track's frames from a second reader of the file (none without one)."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError):
        return
    with container:
        if not container.streams.audio:
            return
        try:
            yield from container.decode(container.streams.audio[0])
        except av.error.FFmpegError:
            return  # a damaged audio tail: keep what was decoded


def _write_audio(sink, stream, frame: av.AudioFrame, samples_written: int) -> int:
    frame.pts, frame.time_base = samples_written, Fraction(1, stream.codec_context.sample_rate)
    sink.mux(stream.encode(frame))
    return samples_written + frame.samples
