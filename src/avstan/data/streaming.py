"""One live container read once, its video frames and its sound in the order they arrive.

A pipe or a camera can be read only once, so a stream whose model reads both the face and
the voice demuxes the two tracks together: :func:`demux_media` yields each step's
:class:`~avstan.data.video.SampledFrame` (chosen by ``data.video.TickSampler``, as
``sample_video`` chooses it) and each decoded piece of sound as :class:`AudioSamples`
(16 kHz mono float32, decoded and resampled as ``data.audio.load_audio`` does, so the
samples equal offline's), interleaved as the container delivers them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from avstan.data.audio import SAMPLE_RATE, NoAudioError
from avstan.data.video import SampledFrame, TickSampler, _frame_time, _reason
from avstan.errors import AvstanError


@dataclass
class AudioSamples:
    """Decoded sound, following the samples before it: ``samples (L,)`` float32 mono."""

    samples: np.ndarray


def demux_media(container: av.container.InputContainer, where, step_rate: float,
                video: bool = True, audio: bool = True, thread_type: str = "SLICE"
                ) -> Iterator[SampledFrame | AudioSamples]:
    """The sampled frames of the first video track (``video``) and the sound of the first
    audio track (``audio``) of an open container, in arrival order.

    A container without the track asked for raises AvstanError (NoAudioError for the
    sound); one that yields no frame or no sound at all raises AvstanError naming
    ``where``; a stream that breaks off after some data ends there.
    """
    streams = []
    if video:
        if not container.streams.video:
            raise AvstanError(f"{where}: has no video stream; a face model needs video "
                              "(audio-only files are for audio models)")
        video_stream = container.streams.video[0]
        video_stream.thread_type = thread_type
        streams.append(video_stream)
        rate = float(video_stream.average_rate) if video_stream.average_rate else None
    if audio:
        if not container.streams.audio:
            raise NoAudioError(f"{where}: has no audio track")
        audio_stream = container.streams.audio[0]
        if audio_stream.codec_context is None:
            raise AvstanError(f"{where}: its audio is in a codec FFmpeg cannot decode")
        streams.append(audio_stream)
        resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
    sampler = TickSampler(step_rate)
    frames = samples = 0

    def sampled(chosen) -> Iterator[SampledFrame]:
        for step, tick, time, frame in chosen:
            yield SampledFrame(step, tick, time, frame.to_ndarray(format="rgb24"))

    try:
        for packet in container.demux(*streams):
            if video and packet.stream.index == video_stream.index:
                for frame in packet.decode():
                    time = _frame_time(frame, frames, rate)
                    frames += 1
                    if time is not None:
                        yield from sampled(sampler.push(time, frame))
            else:
                for frame in packet.decode():
                    for out in resampler.resample(frame):
                        samples += out.samples
                        yield AudioSamples(out.to_ndarray().mean(axis=0).astype(np.float32))
    except av.error.FFmpegError as exc:
        if frames == 0 and samples == 0:
            raise AvstanError(f"{where}: cannot decode any frame ({_reason(exc, where)}); "
                              "the stream is corrupt or truncated") from None
        # A stream that breaks off: what was decoded counts.
    if audio:
        for out in resampler.resample(None):
            samples += out.samples
            yield AudioSamples(out.to_ndarray().mean(axis=0).astype(np.float32))
    if video:
        yield from sampled(sampler.finish())
    if video and sampler.step == 0:
        raise AvstanError(f"{where}: no video frame could be decoded; the file is "
                          "corrupt, truncated or empty")
    if audio and samples == 0:
        raise NoAudioError(f"{where}: no sound could be decoded from its audio track")
