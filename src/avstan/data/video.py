"""Streaming video decoding with PyAV, sampled at the model's step rate.

Frames are decoded one at a time (never the whole video in memory). Step k has the tick
time k / step_rate seconds after the first frame; it takes the decoded frame whose
timestamp is nearest to its tick. Timestamps come from each frame's own presentation
time, so variable frame rates are handled, and the stream's duration is never needed
(many files lack it): ticks run until the last decoded frame, including a final tick that
lies less than half a step after it.

A file cut short (e.g. an MP4 whose index at the start still describes the whole video)
decodes without complaint up to the cut; where the stream states its duration, a decode
that ends more than ``max(0.5 s, 5 %)`` before it is reported (:func:`decoded_frames`'s
``report``: a list the message is appended to, or else a warning naming the file), and
the frames decoded so far are kept.

Image sequences (a folder of numbered frames at a known rate) are sampled the same way.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from avstan.errors import AvstanError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass
class SampledFrame:
    """The frame chosen for one step: ``image`` (H, W, 3) uint8 RGB."""

    step: int
    tick: float  # k / step_rate, seconds from the first frame
    time: float  # the chosen frame's own timestamp, seconds from the first frame
    image: np.ndarray


def _say(message: str, report: list[str] | None) -> None:
    """A note about a video: appended to ``report`` (a caller that warns later, from its own
    thread) or else a warning naming the file."""
    if report is None:
        warnings.warn(message, stacklevel=3)
    else:
        report.append(message)


RESTART_JUMP = 0.5  # s: a frame this much before the last one means the clock restarted


def _frame_time(frame: av.VideoFrame, index: int, rate: float | None) -> float | None:
    if frame.time is not None:
        return float(frame.time)
    if rate:
        return index / rate
    return None


class TickSampler:
    """:func:`sample_ticks` one item at a time, for a caller that reads several streams
    at once: ``push(time, item)`` returns the (step, tick, time, item) decided by this
    item's arrival, ``finish()`` those of the end (the final ticks after the last item)."""

    def __init__(self, step_rate: float) -> None:
        self.step_rate = step_rate
        self.step, self.previous, self.first = 0, None, None

    def push(self, time: float, item: object) -> list[tuple[int, float, float, object]]:
        if self.first is None:
            self.first = time
        time -= self.first
        previous, chosen = self.previous, []
        if previous is not None and time <= previous[0]:
            return chosen  # a repeated or out-of-order timestamp: keep the first
        while self.step / self.step_rate <= time:
            tick = self.step / self.step_rate
            if previous is not None and tick - previous[0] <= time - tick:
                chosen.append((self.step, tick, previous[0], previous[1]))
            else:
                chosen.append((self.step, tick, time, item))
            self.step += 1
        self.previous = (time, item)
        return chosen

    def finish(self) -> list[tuple[int, float, float, object]]:
        chosen, previous = [], self.previous
        if previous is not None:
            while self.step / self.step_rate - previous[0] < 0.5 / self.step_rate:
                chosen.append((self.step, self.step / self.step_rate, previous[0],
                               previous[1]))
                self.step += 1
        return chosen


def sample_ticks(times: Iterator[tuple[float, object]], step_rate: float
                 ) -> Iterator[tuple[int, float, float, object]]:
    """Choose, for every tick k / step_rate, the item whose time is nearest.

    ``times`` yields (time, item) in increasing time; returns (step, tick, time, item).
    Pure bookkeeping, separate from decoding so it can be tested on made-up timestamps
    (:class:`TickSampler` is the same, pushed one item at a time).
    """
    sampler = TickSampler(step_rate)
    for time, item in times:
        yield from sampler.push(time, item)
    yield from sampler.finish()


def sample_video(path: str | Path, step_rate: float = 4.0, report: list[str] | None = None
                 ) -> Iterator[SampledFrame]:
    """Decode ``path`` and yield one frame per step; bad media raise AvstanError naming it.
    A video that ends before its stated duration is reported (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise AvstanError(f"{path}: file not found")
    with open_media(str(path), path) as container:
        yield from sample_container(container, path, step_rate, report=report)


def open_media(file, where, input_format: str | None = None,
               options: dict[str, str] | None = None) -> av.container.InputContainer:
    """Open a media file, pipe (a file-like object) or device (``input_format``, e.g. v4l2,
    with FFmpeg ``options``); AvstanError naming ``where`` if FFmpeg cannot."""
    try:
        return av.open(file, format=input_format, options=options or {})
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise AvstanError(f"{where}: not a readable media file ({_reason(exc, where)}); "
                          "check the file or re-encode it") from None


def decoded_frames(container: av.container.InputContainer, where, thread_type: str = "AUTO",
                   report: list[str] | None = None) -> Iterator[tuple[float, av.VideoFrame]]:
    """(time in seconds, frame) of every frame of the first video stream, as decoded.

    A file that yields no frame at all raises AvstanError; a truncated tail ends the
    frames early, and is reported (see the module docstring) when the stream's stated
    duration shows it. ``thread_type="AUTO"`` decodes several frames in parallel (faster,
    but each frame comes out a few frames late); a live stream uses "SLICE".
    """
    if not container.streams.video:
        raise AvstanError(f"{where}: has no video stream; a face model needs video "
                          "(audio-only files are for audio models)")
    stream = container.streams.video[0]
    stream.thread_type = thread_type
    rate = float(stream.average_rate) if stream.average_rate else None
    index, last, offset, restarts = 0, None, 0.0, []
    try:
        for frame in container.decode(stream):
            time = _frame_time(frame, index, rate)
            if time is not None:
                time += offset
                if last is not None and time < last - RESTART_JUMP:
                    # the clock starts again (MPEG-TS files joined with cat, a recorder's
                    # reset): carry on from the last frame instead of ending there
                    offset += last + (1.0 / rate if rate else 0.0) - time
                    restarts.append(last)
                    time = last + (1.0 / rate if rate else 0.0)
                last = time
                yield time, frame
            index += 1
    except av.error.FFmpegError as exc:
        if index == 0:
            raise AvstanError(f"{where}: cannot decode any frame "
                              f"({_reason(exc, where)}); "
                              "the file is corrupt or truncated") from None
        # A truncated tail: keep the frames decoded so far (and say so below).
    if restarts:
        message = (f"{where}: its timestamps start again {len(restarts)} time(s) (first after "
                   f"{restarts[0]:.2f} s: joined recordings?); the frames are taken as one "
                   "timeline, one after the other")
        _say(message, report)
    declared = None if restarts else _declared_end(stream, container)
    if last is not None and declared is not None:
        decoded = last + (1.0 / rate if rate else 0.0)
        if decoded < declared - max(0.5, 0.05 * declared):
            message = (f"{where}: the video ends early: frames up to {decoded:.2f} s of the "
                       f"{declared:.2f} s its header declares, so the file is probably "
                       "truncated; used as far as it goes")
            _say(message, report)


def _declared_end(stream: av.video.stream.VideoStream, container) -> float | None:
    """The stream's end time (s, on the frames' clock) as its header states it, or None."""
    if stream.duration and stream.time_base:
        start = stream.start_time or 0
        return float((start + stream.duration) * stream.time_base)
    if container.duration:
        return (container.start_time or 0) / 1e6 + container.duration / 1e6
    return None


def sample_container(container: av.container.InputContainer, where, step_rate: float,
                     thread_type: str = "AUTO", report: list[str] | None = None
                     ) -> Iterator[SampledFrame]:
    """One frame per step from an open container (see :func:`sample_ticks`). A step rate
    above the video's frame rate is reported like a short video (``report``, or a
    warning): steps then repeat frames."""
    streams = container.streams.video
    rate = float(streams[0].average_rate) if streams and streams[0].average_rate else None
    if rate and step_rate > rate * 1.01:
        message = (f"{where}: {step_rate:g} steps/s is above the video's {rate:g} frames/s, "
                   "so steps repeat frames; prepare at most at the frame rate "
                   f"(--step-rate {rate:g} or less)")
        _say(message, report)
    any_frame = False
    frames = decoded_frames(container, where, thread_type, report)
    for step, tick, time, frame in sample_ticks(frames, step_rate):
        any_frame = True
        yield SampledFrame(step, tick, time, frame.to_ndarray(format="rgb24"))
    if not any_frame:
        raise AvstanError(f"{where}: no video frame could be decoded; the file is "
                          "corrupt, truncated or empty")


def sample_image_folder(folder: str | Path, frame_rate: float, step_rate: float = 4.0
                        ) -> Iterator[SampledFrame]:
    """Sample a folder of numbered images (``00000.png`` …) taken at ``frame_rate``."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) \
        if folder.is_dir() else []
    if not files:
        raise AvstanError(f"{folder}: no image frames (.png/.jpg) found")
    items = ((index / frame_rate, file) for index, file in enumerate(files))
    for step, tick, time, file in sample_ticks(items, step_rate):
        try:
            with Image.open(file) as image:
                array = np.asarray(image.convert("RGB"))
        except OSError as exc:
            raise AvstanError(f"{file}: not a readable image ({_reason(exc)})") from None
        yield SampledFrame(step, tick, time, array)


def prefetched(items: Iterator[SampledFrame], size: int = 8) -> Iterator[SampledFrame]:
    """Run ``items`` (a decoding generator) in a background thread, ``size`` frames ahead.

    FFmpeg decodes without holding the GIL, so the next frames decode while the caller
    searches the current one for a face. An exception in the decoder is raised here, in
    the caller's thread, when its turn comes.
    """
    buffer: queue.Queue = queue.Queue(maxsize=size)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            buffer.put(error)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _reason(exc: BaseException, path: Path | None = None) -> str:
    """The first line of an exception's message, without the file name it may repeat."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if path is not None:
        text = text.replace(f": '{path}'", "").replace(str(path), "")
    return text[:160]
