"""Streaming prediction: ``avstan predict MODEL --stream SOURCE``, one CSV line per step.

Frames are read as they come — from a pipe (``-`` is standard input), a file that is still
being written (followed until it stops growing for ``idle_timeout`` seconds), or a device
or any other FFmpeg input (``input_format``, e.g. ``v4l2`` for a camera, with FFmpeg
``options`` such as ``video_size``). A pipe needs a streamable container (Matroska,
MPEG-TS, fragmented MP4, raw H.264, MJPEG…); an MP4 whose index sits at its end cannot be
read from a pipe, and FFmpeg says so.

Per step, the same code as offline ``predict``: the step's frame is chosen by
``data.video.sample_ticks``, the face found and aligned by ``data.faces.FaceAligner``, and
the clip ending at this step — past frames only, the first frame repeated before the
start, as offline — goes through ``models.sliding.iter_window_outputs``. A step's line is
written (and flushed) as soon as the first frame after its tick has arrived and the step is
computed: the latency is at most one frame interval plus the face search and one clip's
forward pass (a few tens of milliseconds for the demo model at S = 64 on 2 cores, well
under a step of 0.25 s, so the stream does not fall behind).

Models that hear (``lstm``, ``lstm_ta``, the fusion ``av_sta``) read the sound of the same
stream as it comes: ``data.streaming.demux_media`` decodes both tracks of the one container
(a pipe is read once), and ``data.audio.StreamingFunctionals`` gives each step the eGeMAPS
functionals of the training store's window (``TrainedModel.audio_window``) ending at it,
equal bit for bit to offline's one pass (tested), keeping only the last window of sound
plus 1 s of context. A step's line is written once its frame (the fusion) and the sound up
to 0.5 s after its time have arrived — the reach of offline's own window (its last
analysis frame, its smoothing and the pitch tracker's Viterbi smoother, which decides a
frame with up to 0.4 s after it); the first steps, whose window begins at 0 as offline, wait
for one window of sound (4 s by default), so the first lines come late and then keep
pace. An audio model's steps follow the sound (an audio file, or a video's track, as
offline), the fusion's the frames; the fusion holds the crops of the steps that wait
(a few, unless the sound track stops long before the video: then until the stream ends).
An audio model with a ``lookahead`` of d steps (``models.audio``) writes each step d steps
late, once the clip ending d steps after it has arrived, and its last d steps when the
stream ends, their clips padded with the last step as offline. A stream without an audio
track is one error line for them; a model trained with ``recording_standardisation``
(statistics of the whole recording) is refused; a sound silent throughout, which offline
refuses, gets a warning at the end.

Speed (benchmarks/stream_speed.py, a 19.7 s 640×360 video with speech, demo configs at
S = 64, 2 threads, a file read as fast as it comes): sta3d 18 steps/s, lstm_ta 16.5, av_sta
9.4 — 4.4, 4.1 and 2.4 × real time (4 steps/s). openSMILE run once per step (a fresh
instance on ~5 s of sound) costs ~70 ms, 14.5 steps/s alone, against 330 steps/s for
offline's one pass; when steps are ready together (a file read fast) one call computes
them all. So a live stream keeps up on an idle machine, with less margin than a face
model; on busy cores (measured at load 7 on 2 cores) all three fell below real time.

What differs from offline, because the future is unknown:

* a step without a face repeats the values of the last step with one (offline
  interpolates between both neighbours); before the first face the values are empty;
* inside a clip, a step without a face holds the last face crop (offline takes the
  nearest, which may be a later one) — so such clips can differ from offline;
* post-processing: centring, scaling and the time shift (a delay) are applied as fitted;
  median smoothing is centred, needs future steps, and is **not** applied (a note on
  standard error says so when the model's chain has it).

Elsewhere the lines equal the offline predictions for the same steps (tested). A model with
an expression head also gets offline's ``expression`` and ``p_<class>`` columns (empty
before the first face, then held like the values).
"""

from __future__ import annotations

import csv
import io
import math
import os
import stat
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from avstan.apply.predict import expression_cells, expression_columns
from avstan.data.audio import SILENCE_PEAK, NoAudioError, StreamingFunctionals
from avstan.data.clips import window_indices
from avstan.data.faces import FaceAligner
from avstan.data.streaming import AudioSamples, demux_media
from avstan.data.video import SampledFrame, open_media, prefetched, sample_container
from avstan.errors import AvstanError
from avstan.evaluation.inference import expression_probabilities
from avstan.evaluation.postprocess import PostProcessing, chains_from_dicts
from avstan.models.model_file import TrainedModel
from avstan.models.sliding import frames_to_float, iter_window_outputs


@dataclass
class StreamRow:
    time: float  # the step's tick, seconds from the first frame
    values: np.ndarray | None  # (K,), None before the first face
    face_found: bool
    # (E,) the expression head's class probabilities (models with one), held like values
    expressions: np.ndarray | None = None


class FollowedFile(io.RawIOBase):
    """A file read while it is being written: at its current end, wait for more data, and
    end only when it has not grown for ``idle_timeout`` seconds."""

    def __init__(self, path: str | Path, idle_timeout: float = 5.0, poll: float = 0.05) -> None:
        super().__init__()
        self._handle = open(path, "rb")  # noqa: SIM115 - closed in close()
        self.idle_timeout, self.poll = idle_timeout, poll

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        waited = 0.0
        while True:
            count = self._handle.readinto(buffer)
            if count:
                return count
            if waited >= self.idle_timeout:
                return 0
            time.sleep(self.poll)
            waited += self.poll

    def close(self) -> None:
        self._handle.close()
        super().close()


def parse_input_options(options: Sequence[str]) -> dict[str, str]:
    """``--input-option KEY=VALUE`` arguments as FFmpeg's options dict."""
    parsed = dict(option.partition("=")[::2] for option in options)
    if any(not key or not value for key, value in parsed.items()):
        raise AvstanError(f"--input-option {list(options)}: write KEY=VALUE")
    return parsed


def open_stream(source: str, input_format: str | None = None,
                options: dict[str, str] | None = None, idle_timeout: float = 5.0):
    """An open PyAV container and the name to use in messages for ``source``."""
    if source == "-":
        return open_media(sys.stdin.buffer, "standard input", input_format, options), \
            "standard input"
    path = Path(source)
    if input_format is None and path.exists() and stat.S_ISREG(os.stat(path).st_mode):
        return open_media(FollowedFile(path, idle_timeout), path, None, options), path
    if input_format is None and not path.exists():
        raise AvstanError(f"{source}: no such file, pipe or device; for a camera or network "
                          "input name FFmpeg's input format with --input-format (e.g. v4l2)")
    return open_media(source, source, input_format, options), source


class CausalClips:
    """The clip ending at the newest step, from past steps only (see the module docstring).

    ``push`` the step's crop (None without a face); ``clip()`` is then (T, S, S, 3) uint8,
    or None while no face has been seen.
    """

    def __init__(self, clip_length: int) -> None:
        self.clip_length = clip_length
        self.recent: deque = deque(maxlen=clip_length)  # crop, or the last found, or None
        self.first = self.last = None
        self.steps = 0

    def push(self, crop: np.ndarray | None) -> None:
        if crop is not None:
            self.last = crop
            if self.first is None:
                self.first = crop
        self.recent.append(crop if crop is not None else self.last)
        self.steps += 1

    def clip(self) -> np.ndarray | None:
        if self.first is None:
            return None
        # Steps before the first face hold the first face's crop (as offline, which takes
        # the nearest found crop); the padding is data.clips.window_indices', offline's own.
        frames = np.stack([self.first if c is None else c for c in self.recent])
        end = self.steps - 1
        oldest_held = max(0, end - self.clip_length + 1)
        return frames[window_indices([end], self.clip_length)[0] - oldest_held]


class CausalPostProcessing:
    """The causal steps of a fitted chain, one value at a time: centring, scaling, delay."""

    def __init__(self, chain: PostProcessing) -> None:
        self.chain = chain
        self.history: deque = deque(maxlen=chain.shift_steps + 1)

    def __call__(self, value: float) -> float:
        chain = self.chain
        value = value + chain.centre_offset
        value = chain.scale_reference + (value - chain.scale_reference) * chain.scale_factor
        self.history.append(value)
        # Delay by shift_steps; until then the first value repeats (as offline).
        return self.history[0]


@dataclass
class _Step:
    """A step waiting for its sound: its tick and the face crop found on its frame."""

    tick: float
    crop: np.ndarray | None
    face_found: bool


def stream_rows(samples: Iterable[SampledFrame | AudioSamples], model,
                aligner: FaceAligner | None, chains: Sequence[CausalPostProcessing] | None = None,
                device: str = "cpu", audio: StreamingFunctionals | None = None,
                step_rate: float | None = None) -> Iterator[StreamRow]:
    """One row per step, computed as soon as its frame (models that see the face) and its
    sound (models that hear, ``audio``) have arrived; nothing is read ahead.

    ``samples``: the sampled frames and decoded sound of ``data.streaming.demux_media``.
    A face model's steps are its frames; an audio model's (no ``aligner``) are
    ``k / step_rate`` along the sound, until the end of it, as offline (and its rows say
    ``face_found`` False); the fusion's are the frames, each waiting for its sound.
    """
    sees_face = "clip" in model.input_names
    clips = CausalClips(model.clip_length) if sees_face else None
    features = CausalClips(model.clip_length) if audio is not None else None
    pending: deque[_Step] = deque()
    next_tick = 0  # an audio model's next step
    held = None  # the raw prediction of the last step with a face
    held_expressions = None  # and its expression probabilities (models with a head)
    # A model with a lookahead of d steps predicts a step from the clip ending d steps
    # later (data.clips): a step waits here until then. At the end the last step's inputs
    # are repeated past it for the last d steps, as offline (last-step padding).
    lookahead = getattr(model, "lookahead", 0)
    late: deque[_Step] = deque()
    received = pushed = 0  # steps received; steps pushed into the clips, padding included

    def row(step: _Step) -> StreamRow:
        values = held
        if held is not None and chains is not None:
            # A step without a face feeds the held value on, so the delay line moves as
            # it does offline after interpolation.
            values = np.array([chain(v) for chain, v in zip(chains, held, strict=True)])
        return StreamRow(step.tick, None if values is None else np.clip(values, -1.0, 1.0),
                         step.face_found, held_expressions)

    def rows(steps: list[_Step], final: bool = False) -> Iterator[StreamRow]:
        nonlocal held, held_expressions, pushed, received
        if audio is not None and steps:
            times = np.array([step.tick for step in steps])
            computed = audio.finish(times) if final else audio.features(times)
        for index, step in enumerate(steps):
            if features is not None:
                features.push(computed[index])
            if clips is not None:
                clips.push(step.crop)
            pushed = received = received + 1
            if step.face_found or not sees_face:
                held, held_expressions = _predict(model, clips, features, device)
            late.append(step)
            if len(late) > lookahead:
                yield row(late.popleft())
        while final and late:
            # The oldest waiting step's clip ends `lookahead` steps after it, past the last
            # step received: the last step's inputs are pushed again up to there.
            while pushed < received - len(late) + lookahead + 1:
                if features is not None:
                    features.push(features.recent[-1])
                if clips is not None:
                    clips.push(clips.recent[-1])
                pushed += 1
                held, held_expressions = _predict(model, clips, features, device)
            yield row(late.popleft())

    for sample in samples:
        if isinstance(sample, AudioSamples):
            if audio is None:
                continue
            audio.append(sample.samples)
            while not sees_face and audio.ready(next_tick / step_rate):
                pending.append(_Step(next_tick / step_rate, None, False))
                next_tick += 1
        else:
            face = aligner(sample.image)
            pending.append(_Step(sample.tick, None if face is None else face.crop,
                                 face is not None))
        ready = []
        while pending and (audio is None or audio.ready(pending[0].tick)):
            ready.append(pending.popleft())
        yield from rows(ready)
    if audio is not None and not sees_face:
        # The last step lies less than half a step after the end of the sound, as offline.
        while next_tick / step_rate < audio.received / audio.sample_rate + 0.5 / step_rate:
            pending.append(_Step(next_tick / step_rate, None, False))
            next_tick += 1
    yield from rows(list(pending), final=True)


def _predict(model, clips: CausalClips | None, features: CausalClips | None,
             device: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's raw prediction (K,) for the clip ending at the newest step, and its
    expression head's class probabilities (E,) when it has one."""
    if features is None:  # a face model: the sliding-window code of offline predict
        ((_, out),) = iter_window_outputs(model, clips.clip(), [model.clip_length - 1],
                                          model.clip_length, batch_size=1, device=device)
    else:
        inputs = {"audio": torch.from_numpy(features.clip()).unsqueeze(0).to(device)}
        if clips is not None:
            # As data.clips.ClipDataset cuts them: (1, 3, T, S, S) in [0, 1].
            inputs["clip"] = frames_to_float(clips.clip()).transpose(0, 1).unsqueeze(0).to(
                device)
        with torch.inference_mode():
            out = model(**inputs)
    probabilities = expression_probabilities(out)
    return (out["prediction"][0].float().cpu().numpy().astype(np.float64),
            None if probabilities is None else probabilities[0].numpy())


def stream_predict(model_path: str | Path, source: str, out: TextIO | None = None,
                   input_format: str | None = None, options: dict[str, str] | None = None,
                   device: str = "cpu", postprocess: bool = True, idle_timeout: float = 5.0,
                   log: TextIO | None = None, redetect_every: int | None = None,
                   detector: str | None = None) -> int:
    """Predict ``source`` as it comes; writes a CSV header and one flushed line per step to
    ``out`` (standard output). Returns the number of steps. ``redetect_every``, ``detector``:
    as for ``predict_videos`` (default: the training store's)."""
    if not (math.isfinite(idle_timeout) and idle_timeout > 0):
        raise AvstanError(f"--idle-timeout {idle_timeout:g}: use a positive number of "
                          "seconds (default 5)")
    out = out or sys.stdout
    log = log or sys.stderr
    torch.set_flush_denormal(True)  # as offline predict
    trained = TrainedModel.load(model_path, device)
    trained.check_media_audio(model_path)
    if getattr(trained.network, "recording_standardisation", False):
        raise AvstanError(f"{model_path}: {trained.model_name} standardises each recording "
                          "with statistics of the whole recording (recording_standardisation), "
                          "which a stream does not have until it ends; predict the file "
                          "offline (avstan predict MODEL FILE)")
    model, targets = trained.network, trained.targets
    chains = None
    fitted = chains_from_dicts(trained.postprocessing) if postprocess else None
    if fitted:
        chains = [CausalPostProcessing(fitted[t]) for t in targets]
        smoothed = [t for t in targets if fitted[t].median_window > 1]
        if smoothed:
            print(f"avstan: note: median smoothing ({', '.join(smoothed)}) needs future steps "
                  "and is not applied to a stream; centring, scaling and shift are",
                  file=log, flush=True)
    aligner = None
    if trained.reads_video:
        aligner = FaceAligner(trained.crop_size, trained.alignment_template,
                              redetect_every=trained.face_search_interval(redetect_every),
                              detector=trained.face_detector(detector))
    container, where = open_stream(source, input_format, options, idle_timeout)
    audio = (StreamingFunctionals(trained.audio_window, source=str(where))
             if trained.reads_audio else None)
    writer = csv.writer(out, lineterminator="\n")
    classes = getattr(model, "expression_classes", 0)  # the columns offline predict writes
    steps = 0
    with container:
        if audio is None:
            samples = sample_container(container, where, trained.step_rate,
                                       thread_type="SLICE")
            ahead = 8
        else:
            samples = demux_media(container, where, trained.step_rate,
                                  video=trained.reads_video, audio=True)
            ahead = 64  # pieces of sound are small: a few dozen per second
        # Closed before the container is, whatever happens: the decoding thread must have
        # stopped by then (FFmpeg crashes on a container closed under it).
        decoded = prefetched(samples, ahead)
        try:
            for row in stream_rows(decoded, model, aligner, chains, device, audio,
                                   trained.step_rate):
                values = ([""] * len(targets) if row.values is None
                          else [f"{v:.5f}" for v in row.values])
                if steps == 0:  # the header with the first line: nothing for a dead source
                    writer.writerow(["time", *targets, "face_found",
                                     *expression_columns(classes)])
                writer.writerow([f"{row.time:.3f}", *values, int(row.face_found),
                                 *expression_cells(row.expressions, classes)])
                out.flush()
                steps += 1
        except NoAudioError as error:
            raise AvstanError(f"{error}; {trained.model_name} reads the sound, so it cannot "
                              "stream this source; use a face model for it") from None
        except AvstanError as error:
            is_file = source != "-" and input_format is None and Path(source).is_file()
            if steps or not (source == "-" or is_file) or (audio is not None
                                                           and audio.received) \
                    or "has no video stream" in str(error):
                raise  # not the container: something after its first data, or a sound file
            if source == "-":
                raise AvstanError(f"{error}; a pipe needs a streamable container (Matroska, "
                                  "MPEG-TS, fragmented MP4), not an MP4 indexed at its "
                                  "end") from None
            raise AvstanError(f"{error}; a file is read as it grows, which needs a streamable "
                              "container (Matroska, MPEG-TS, fragmented MP4), not an MP4 "
                              "indexed at its end; predict a finished file offline (avstan "
                              "predict MODEL FILE)") from None
        finally:
            decoded.close()
    if audio is not None and audio.received and audio.peak < SILENCE_PEAK:
        print(f"avstan: warning: {where}: the sound was silent throughout (peak "
              f"{audio.peak:.1e}); offline predict refuses such a file, and these values "
              "describe silence", file=log, flush=True)
    print(f"avstan: {where}: the stream ended after {steps} steps", file=log, flush=True)
    return steps
