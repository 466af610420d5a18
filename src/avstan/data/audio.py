"""Audio in: decoding to 16 kHz mono, eGeMAPS functionals on the step timeline, and the
robust standardisation of those features.

Decoding (:func:`audio_chunks`, in pieces; :func:`load_audio`, those collected) streams a
media file's first audio track through PyAV, from a video's own track or an audio file
(wav, flac, mp3, …), resampled to 16 kHz; channels are averaged to mono. A file without an
audio track, or whose track is silent, raises :class:`NoAudioError` (callers prepare the
recording for video models and leave it out of audio models); any other unusable file
raises AvstanError naming it.

Features (:func:`egemaps_functionals`): the 88 eGeMAPS v02 functionals of openSMILE over a
sliding window that ends at each step time, so audio sits on exactly the timeline of the
face crops and the labels. Steps earlier than one window use the window that begins at 0:
for those first steps the features look ahead up to one window.

All windows come from ONE openSMILE run in frame mode: the functionals components read a
``.conf.inc`` with ``frameMode = fixed`` (window and hop in seconds, turned by openSMILE into
whole 10 ms low-level-descriptor frames) instead of one run per window. A window is the
``window_seconds / 10 ms`` LLD frames that begin in ``[t - window, t)``; the analysis
frame of the last of them (at most 60 ms, for F0) reaches up to 50 ms past ``t``.

Where one pass differs from one openSMILE call per window: the LLDs of one pass are those of
the whole recording, so they agree with a separate call on the window's audio everywhere
except the few LLD frames at the window's edges, which a separate call computes without
context (the 3-frame ``sma3`` smoothing at the edges, pitch tracking and voicing decisions
over the first and last ~5 frames, the first spectral-flux difference). Measured on real
speech (tests/data/speech 00–06, 18 s, 4 s windows every 0.5 s, 29 windows; the separate
call given ``[t - W, t + 40 ms)``, which yields the same 400 LLD frames): 85 of the 88
functionals agree within 1 % relative error in the median window and 30 within 0.1 %; 81
correlate above 0.99 across windows. Given only ``[t - W, t)`` (396 LLD frames) it is 77
within 1 %. The functionals that differ most depend on segment boundaries or divide by a
mean close to zero: the F0 and loudness rising/falling slopes (a rise or fall cut by the
window edge; correlation 0.94–0.98), ``loudnessPeaksPerSec``, and the ``*_stddevNorm`` and
means of the low MFCCs (``mfcc3_sma3_stddevNorm`` flips sign, as its mean sits near zero).
One pass is the more consistent of the two: its windows are exact slices of one LLD track
(a test checks ``loudness_sma3_amean`` against the mean of openSMILE's own LLD track).

A long file (:func:`file_functionals`, :func:`file_functionals_every_step`): decoded in
chunks into :class:`StreamingFunctionals`, about a minute of steps per openSMILE call, equal
to the one pass over the whole signal in memory that does not grow with the file.

Standardisation (:func:`fit_standardisation`, :func:`standardise`): median and
interquartile range, z-scores clipped to ±5. See :func:`fit_standardisation` for why.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from avstan.errors import AvstanError

SAMPLE_RATE = 16000
LLD_HOP = 0.01  # seconds between eGeMAPS low-level-descriptor frames
# The eGeMAPS window ending at each step (s): AVEC 2017's arousal window (valence used 6).
DEFAULT_AUDIO_WINDOW = 4.0
SILENCE_PEAK = 1e-4  # a track whose peak stays below -80 dBFS carries no usable sound
EGEMAPS_NAMES = (
    "F0semitoneFrom27.5Hz_sma3nz_amean", "F0semitoneFrom27.5Hz_sma3nz_stddevNorm",
    "F0semitoneFrom27.5Hz_sma3nz_percentile20.0", "F0semitoneFrom27.5Hz_sma3nz_percentile50.0",
    "F0semitoneFrom27.5Hz_sma3nz_percentile80.0", "F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2",
    "F0semitoneFrom27.5Hz_sma3nz_meanRisingSlope", "F0semitoneFrom27.5Hz_sma3nz_stddevRisingSlope",
    "F0semitoneFrom27.5Hz_sma3nz_meanFallingSlope",
    "F0semitoneFrom27.5Hz_sma3nz_stddevFallingSlope",
    "loudness_sma3_amean", "loudness_sma3_stddevNorm", "loudness_sma3_percentile20.0",
    "loudness_sma3_percentile50.0", "loudness_sma3_percentile80.0", "loudness_sma3_pctlrange0-2",
    "loudness_sma3_meanRisingSlope", "loudness_sma3_stddevRisingSlope",
    "loudness_sma3_meanFallingSlope", "loudness_sma3_stddevFallingSlope",
    "spectralFlux_sma3_amean", "spectralFlux_sma3_stddevNorm",
    "mfcc1_sma3_amean", "mfcc1_sma3_stddevNorm", "mfcc2_sma3_amean", "mfcc2_sma3_stddevNorm",
    "mfcc3_sma3_amean", "mfcc3_sma3_stddevNorm", "mfcc4_sma3_amean", "mfcc4_sma3_stddevNorm",
    "jitterLocal_sma3nz_amean", "jitterLocal_sma3nz_stddevNorm",
    "shimmerLocaldB_sma3nz_amean", "shimmerLocaldB_sma3nz_stddevNorm",
    "HNRdBACF_sma3nz_amean", "HNRdBACF_sma3nz_stddevNorm",
    "logRelF0-H1-H2_sma3nz_amean", "logRelF0-H1-H2_sma3nz_stddevNorm",
    "logRelF0-H1-A3_sma3nz_amean", "logRelF0-H1-A3_sma3nz_stddevNorm",
    "F1frequency_sma3nz_amean", "F1frequency_sma3nz_stddevNorm",
    "F1bandwidth_sma3nz_amean", "F1bandwidth_sma3nz_stddevNorm",
    "F1amplitudeLogRelF0_sma3nz_amean", "F1amplitudeLogRelF0_sma3nz_stddevNorm",
    "F2frequency_sma3nz_amean", "F2frequency_sma3nz_stddevNorm",
    "F2bandwidth_sma3nz_amean", "F2bandwidth_sma3nz_stddevNorm",
    "F2amplitudeLogRelF0_sma3nz_amean", "F2amplitudeLogRelF0_sma3nz_stddevNorm",
    "F3frequency_sma3nz_amean", "F3frequency_sma3nz_stddevNorm",
    "F3bandwidth_sma3nz_amean", "F3bandwidth_sma3nz_stddevNorm",
    "F3amplitudeLogRelF0_sma3nz_amean", "F3amplitudeLogRelF0_sma3nz_stddevNorm",
    "alphaRatioV_sma3nz_amean", "alphaRatioV_sma3nz_stddevNorm",
    "hammarbergIndexV_sma3nz_amean", "hammarbergIndexV_sma3nz_stddevNorm",
    "slopeV0-500_sma3nz_amean", "slopeV0-500_sma3nz_stddevNorm",
    "slopeV500-1500_sma3nz_amean", "slopeV500-1500_sma3nz_stddevNorm",
    "spectralFluxV_sma3nz_amean", "spectralFluxV_sma3nz_stddevNorm",
    "mfcc1V_sma3nz_amean", "mfcc1V_sma3nz_stddevNorm", "mfcc2V_sma3nz_amean",
    "mfcc2V_sma3nz_stddevNorm", "mfcc3V_sma3nz_amean", "mfcc3V_sma3nz_stddevNorm",
    "mfcc4V_sma3nz_amean", "mfcc4V_sma3nz_stddevNorm",
    "alphaRatioUV_sma3nz_amean", "hammarbergIndexUV_sma3nz_amean",
    "slopeUV0-500_sma3nz_amean", "slopeUV500-1500_sma3nz_amean",
    "spectralFluxUV_sma3nz_amean", "loudnessPeaksPerSec", "VoicedSegmentsPerSec",
    "MeanVoicedSegmentLengthSec", "StddevVoicedSegmentLengthSec",
    "MeanUnvoicedSegmentLength", "StddevUnvoicedSegmentLength", "equivalentSoundLevel_dBp",
)


class NoAudioError(AvstanError):
    """The file has no audio track, or its track is silent: not an error for video models;
    audio models skip the recording with a warning naming it."""


def feature_names() -> list[str]:
    """The 88 eGeMAPS v02 functional names, in the column order of
    :func:`egemaps_functionals`."""
    return list(EGEMAPS_NAMES)


# --------------------------------------------------------------------------- decoding


def audio_chunks(path: str | Path, sample_rate: int = SAMPLE_RATE,
                 chunk_seconds: float = 10.0) -> Iterator[np.ndarray]:
    """Decode the first audio track of ``path`` to mono float32 in [-1, 1] at
    ``sample_rate``, yielded in pieces of ``chunk_seconds`` (the last one shorter):
    ``chunk (L_i,)``, which joined are :func:`load_audio`'s signal.

    Memory held is one chunk and one packet, however long the file. Raises NoAudioError
    for no audio track or a silent track, AvstanError for a missing, corrupt, truncated or
    undecodable file. A file's length is only known once it is decoded, so the checks that
    compare it with the header (truncated, a cut-off last frame, a wav missing bytes) and
    the silence check raise after the last chunk: a caller must use the chunks only once
    the generator has ended without raising.
    """
    path = Path(path)
    if not path.is_file():
        raise AvstanError(f"{path}: file not found")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise AvstanError(f"{path}: not a readable media file ({_reason(exc, path)}); "
                          "check the file or re-encode it") from None
    chunk_size = max(1, int(chunk_seconds * sample_rate))
    chunk = np.empty(chunk_size, dtype=np.float32)
    filled = decoded = 0  # samples in ``chunk``, samples decoded in all
    peak = 0.0
    with container:
        if not container.streams.audio:
            raise NoAudioError(f"{path}: has no audio track; audio models skip this "
                               "recording (video models still use it)")
        stream = container.streams.audio[0]
        if stream.codec_context is None:
            raise AvstanError(f"{path}: its audio is in a codec or sample format FFmpeg cannot "
                              "decode; re-encode it (e.g. to 16-bit PCM wav)")
        declared = _declared_seconds(stream, container)
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        last_packet = None

        def resampled(frame) -> Iterator[np.ndarray]:
            for out in resampler.resample(frame):
                yield out.to_ndarray().mean(axis=0)

        def packets() -> Iterator[np.ndarray]:
            nonlocal last_packet
            for packet in container.demux(stream):
                if packet.size:
                    last_packet = packet
                for frame in packet.decode():
                    yield from resampled(frame)
            yield from resampled(None)

        pieces = packets()
        while True:
            try:
                piece = next(pieces, None)
            except (av.error.FFmpegError, ValueError) as exc:
                done = f" after {decoded / sample_rate:.2f} s" if decoded else ""
                raise AvstanError(f"{path}: cannot decode its audio{done} "
                                  f"({_reason(exc, path)}); the file is corrupt, truncated or "
                                  "in an unsupported sample format; re-encode it (e.g. to "
                                  "16-bit PCM wav)") from None
            if piece is None:
                break
            decoded += piece.size
            while piece.size:
                taken = min(piece.size, chunk_size - filled)
                np.clip(piece[:taken], -1.0, 1.0, out=chunk[filled:filled + taken])
                filled, piece = filled + taken, piece[taken:]
                if filled == chunk_size:
                    peak = max(peak, float(np.abs(chunk).max()))
                    yield chunk
                    chunk, filled = np.empty(chunk_size, dtype=np.float32), 0
    if filled:
        peak = max(peak, float(np.abs(chunk[:filled]).max()))
        yield chunk[:filled]
    seconds = decoded / sample_rate
    if decoded == 0:
        raise AvstanError(f"{path}: no audio could be decoded; the file is corrupt, "
                          "truncated or empty")
    # A file cut short decodes without complaint, so compare with what its header says.
    if declared and seconds < declared - max(0.5, 0.05 * declared):
        raise AvstanError(f"{path}: truncated audio: decoded {seconds:.2f} s of the "
                          f"{declared:.2f} s its header declares; re-export the file")
    if last_packet is not None and _frame_cut_off(bytes(last_packet), stream.codec_context.name):
        raise AvstanError(f"{path}: truncated audio: its last frame is cut off after "
                          f"{seconds:.2f} s; re-export the file")
    missing = _wav_missing_bytes(path)
    if missing:
        raise AvstanError(f"{path}: truncated wav file: {missing} bytes of the audio data its "
                          "header declares are missing; re-export the file")
    if peak < SILENCE_PEAK:
        raise NoAudioError(f"{path}: the audio track is silent (peak {peak:.1e}); audio "
                           "models skip this recording (video models still use it)")


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The whole first audio track of ``path``, mono float32 in [-1, 1] at ``sample_rate``:
    ``signal (L,)``, the chunks of :func:`audio_chunks` collected into one buffer (and its
    checks and errors). Its memory grows with the file: :func:`file_functionals` computes
    the features of a long file without it."""
    buffer = _GrowingBuffer(60 * sample_rate)
    for chunk in audio_chunks(path, sample_rate):
        buffer.append(chunk)
    return buffer.result()


def audio_seconds(path: str | Path) -> float | None:
    """The length of a file's first audio track from its header (nothing decoded); None
    when the file has no audio track, declares no length or cannot be opened."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            return _declared_seconds(container.streams.audio[0], container)
    except (av.error.FFmpegError, OSError, ValueError):
        return None


def _declared_seconds(stream: av.audio.stream.AudioStream, container) -> float | None:
    """The audio stream's duration from the file header, None where it has none."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and not container.streams.video:
        return container.duration / 1e6  # microseconds (av.time_base)
    return None


_MPEG_BITRATES = {  # kbit/s by bitrate index 1..14: (MPEG-1 layer III, MPEG-2/2.5 layer III)
    1: (32, 8), 2: (40, 16), 3: (48, 24), 4: (56, 32), 5: (64, 40), 6: (80, 48), 7: (96, 56),
    8: (112, 64), 9: (128, 80), 10: (160, 96), 11: (192, 112), 12: (224, 128),
    13: (256, 144), 14: (320, 160)}
_MPEG_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000),
                      0: (11025, 12000, 8000)}  # by version bits: MPEG-1, -2, -2.5


def _frame_cut_off(packet: bytes, codec: str) -> bool:
    """Whether the last packet of an MP3 (MPEG layer III) or ADTS AAC stream is shorter
    than the frame length its own header announces: the file was cut inside that frame.

    Such files state no duration of their own: without a Xing/Info header FFmpeg estimates
    an mp3's duration from the file size and bit rate, so a cut-off file decodes
    "completely" to the estimate. A cut that falls exactly on a frame boundary is not
    seen here (nothing in the file says more was meant to follow)."""
    if len(packet) < 7 or packet[0] != 0xFF or codec not in ("mp3", "mp3float", "aac"):
        return False
    if codec == "aac":
        if packet[1] & 0xF6 != 0xF0:  # raw AAC (e.g. in MP4): framed by the container
            return False
        # ADTS: 13-bit frame length in bytes 3-5, header included
        length = ((packet[3] & 0x03) << 11) | (packet[4] << 3) | (packet[5] >> 5)
        return len(packet) < length
    version, layer = (packet[1] >> 3) & 0x03, (packet[1] >> 1) & 0x03
    if packet[1] & 0xE0 != 0xE0 or layer != 1 or version == 1:  # not layer III
        return False
    bitrate_index, rate_index = packet[2] >> 4, (packet[2] >> 2) & 0x03
    if bitrate_index not in _MPEG_BITRATES or rate_index == 3:
        return False
    bitrate = _MPEG_BITRATES[bitrate_index][0 if version == 3 else 1] * 1000
    sample_rate = _MPEG_SAMPLE_RATES[version][rate_index]
    padding = (packet[2] >> 1) & 0x01
    length = (144 if version == 3 else 72) * bitrate // sample_rate + padding
    return len(packet) < length


def _wav_missing_bytes(path: Path) -> int:
    """How many bytes of a RIFF/WAVE file's ``data`` chunk lie past the end of the file (0
    for other files, and for writers that leave the size unknown). FFmpeg takes a wav's
    duration from its file size, so a cut-off wav is only seen in its own header."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            if handle.read(4) != b"RIFF" or handle.read(4) == b"" or handle.read(4) != b"WAVE":
                return 0
            while True:
                header = handle.read(8)
                if len(header) < 8:
                    return 0
                chunk, length = header[:4], int.from_bytes(header[4:], "little")
                if chunk == b"data":
                    if length in (0, 0xFFFFFFFF):  # streamed: size never filled in
                        return 0
                    return max(0, handle.tell() + length - size)
                handle.seek(length + (length & 1), os.SEEK_CUR)
    except OSError:
        return 0


class _GrowingBuffer:
    """Append 1-D float32 chunks into one array that doubles its capacity when full."""

    def __init__(self, capacity: int) -> None:
        self.data = np.empty(max(capacity, 1024), dtype=np.float32)
        self.size = 0

    def append(self, chunk: np.ndarray) -> None:
        end = self.size + chunk.size
        if end > self.data.size:
            self.data.resize(max(end, 2 * self.data.size), refcheck=False)
        self.data[self.size:end] = chunk
        self.size = end

    def result(self) -> np.ndarray:
        self.data.resize(self.size, refcheck=False)
        return self.data


def _reason(exc: BaseException, path: Path | None = None) -> str:
    """The first line of an exception's message, without the file name it may repeat."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.sub(r"^\[Errno -?\d+\] ", "", text)
    if path is not None:
        text = text.replace(f": '{path}'", "").replace(str(path), "")
    return text[:160]


# --------------------------------------------------------------------------- features


def clip_for_opensmile(signal: np.ndarray) -> np.ndarray:
    """``signal`` clipped to what openSMILE reads without wrapping: it reads 16-bit
    integers, so x · 32768 must stay below 32768 (+1 would wrap around to -1)."""
    return np.clip(signal, -1.0, 32767 / 32768)


def egemaps_functionals(signal: np.ndarray, sample_rate: int, step_times: np.ndarray,
                        window_seconds: float = DEFAULT_AUDIO_WINDOW,
                        source: str = "the audio", hop_frames: int | None = None
                        ) -> np.ndarray:
    """eGeMAPS v02 functionals over a window ending at each step: ``(N, 88)`` float32.

    Parameters
    ----------
    signal : (L,) float
        Mono audio in [-1, 1] (values outside are clipped).
    sample_rate : int
        Samples per second of ``signal`` (:func:`load_audio` gives 16000).
    step_times : (N,) float
        Step times in seconds from the start of ``signal``, increasing (the store's
        ``times``: ``k / step_rate``).
    window_seconds : float
        Window length; it ends at each step time, and steps earlier than one window take
        the window that begins at 0 (looking ahead for them; see the module docstring).
    source : str
        The file the signal came from, for messages.
    hop_frames : int, optional
        LLD frames between the windows openSMILE computes; by default the largest that
        divides every step's window start. It decides which window a step just past the
        end of the audio takes (:class:`StreamingFunctionals` passes the whole
        recording's, so that its last piece matches).

    Returns
    -------
    (N, 88) float32, columns in the order of :data:`EGEMAPS_NAMES`. A step whose window lies
    mostly after the end of the audio (a video whose audio track stops early) has a NaN row;
    a step just past the end takes the last full window.

    Raises AvstanError naming ``source`` when the signal is shorter than one window.
    """
    import opensmile  # loads the openSMILE library; only audio code pays for it

    signal = np.asarray(signal, dtype=np.float32)
    step_times = np.asarray(step_times, dtype=np.float64)
    if signal.ndim != 1 or step_times.ndim != 1:
        raise ValueError(f"signal must be (L,) and step_times (N,), got {signal.shape} and "
                         f"{step_times.shape}")
    if not np.isfinite(step_times).all() or np.any(np.diff(step_times) < 0):
        raise ValueError("step_times must be finite and increasing")
    window_frames = int(round(window_seconds / LLD_HOP))
    if window_frames < 10:
        raise ValueError(f"window_seconds must be at least {10 * LLD_HOP} s, "
                         f"got {window_seconds}")
    duration = signal.size / sample_rate
    _check_long_enough(duration, window_seconds, source)
    if step_times.size == 0:
        return np.zeros((0, len(EGEMAPS_NAMES)), dtype=np.float32)

    # First LLD frame of each step's window; the hop between computed windows is the
    # largest whole number of LLD frames that divides all of them, so every window wanted
    # is computed exactly (4 steps/s: 25 frames; 3 steps/s: 1 frame, slower but exact).
    first = np.rint((np.maximum(step_times, window_seconds) - window_seconds) / LLD_HOP)
    first = first.astype(np.int64)
    if hop_frames is None:
        hop_frames = int(np.gcd.reduce(first)) or window_frames

    # openSMILE turns seconds into frames by truncation; a quarter frame more keeps
    # 6.0 s (599.99… frames in floating point) at 600.
    handle, conf = tempfile.mkstemp(suffix=".conf.inc", prefix="avstan-framemode-")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(f"frameMode = fixed\nframeSize = {(window_frames + 0.25) * LLD_HOP!r}\n"
                      f"frameStep = {(hop_frames + 0.25) * LLD_HOP!r}\n"
                      "frameCenterSpecial = left\n")
        smile = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02,
                                opensmile.FeatureLevel.Functionals,
                                options={"frameModeFunctionalsConf": conf})
        clipped = clip_for_opensmile(signal)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Segment too short": checked below
            table = smile.process_signal(clipped, sample_rate)
    finally:
        Path(conf).unlink(missing_ok=True)
    if tuple(table.columns) != EGEMAPS_NAMES:
        raise RuntimeError("openSMILE's eGeMAPSv02 columns differ from EGEMAPS_NAMES")
    values = table.to_numpy(dtype=np.float32)
    starts = np.rint(table.index.get_level_values("start").total_seconds().to_numpy()
                     / LLD_HOP).astype(np.int64)
    if values.shape[0] == 0 or not np.isfinite(values[0]).any():
        raise AvstanError(f"{source}: the audio is {duration:.2f} s long, too short for one "
                          f"{window_seconds:g} s eGeMAPS window; audio models skip it")
    if not np.array_equal(starts, np.arange(len(starts)) * hop_frames):
        raise RuntimeError(f"openSMILE windows start at frames {starts[:4]}…, expected "
                           f"multiples of {hop_frames}")

    index = np.minimum(first // hop_frames, len(starts) - 1)
    out = values[index]
    # Steps whose window is mostly past the audio's end have no audio to describe.
    window_middle = np.maximum(step_times, window_seconds) - window_seconds / 2
    out[window_middle > duration] = np.nan
    return out


def _check_long_enough(duration: float, window_seconds: float, source: str) -> None:
    # A window needs its LLD frames plus the 50 ms that the last analysis frame spans.
    needed = int(round(window_seconds / LLD_HOP)) * LLD_HOP + 0.05
    if duration < needed:
        raise AvstanError(f"{source}: the audio is {duration:.2f} s long, shorter than one "
                          f"{window_seconds:g} s eGeMAPS window; audio models skip it (or "
                          "prepare with a shorter audio window)")


STREAM_CONTEXT = 1.0  # s of audio before a window that a stream's openSMILE call gets
STREAM_LOOKAHEAD = 0.5  # s of audio after a step that a stream waits for (see below)


class StreamingFunctionals:
    """:func:`egemaps_functionals` of a signal that is still arriving, step by step, equal
    to the one pass over the whole recording.

    ``append`` decoded samples as they come; a step at time ``t`` is :meth:`ready` once the
    audio reaches ``max(t, window) + lookahead`` (``STREAM_LOOKAHEAD`` unless given);
    :meth:`features` then computes the ready steps with one openSMILE call on the audio
    from ``STREAM_CONTEXT`` before their windows to that point, and :meth:`finish` the
    steps left when the audio has ended, on the audio up to its end. Only that audio is
    kept (``window + context + lookahead`` seconds, plus one window hop), so memory stays
    bounded however long the stream is.

    Why the context and the lookahead: one pass gives each LLD frame its neighbours, and a
    window's own frames reach past ``t`` (the last analysis frame spans 50 ms after it, its
    3-frame smoothing takes the next frame, the pitch tracker's Viterbi smoothing decides a
    frame with later ones). Measured on real speech (tests/data/speech 00-07, 20 s, 4 s
    windows, 82 steps): with 1 s (also 0.5 s) before the window and 0.1 s after ``t``
    every functional of every step equals the one pass bit for bit; with no context 12-69
    of the 88 differ, with 0.06 s after ``t`` some steps differ (tests compare a stream
    with offline ``predict``).

    0.1 s is not always enough for a step off the 10 ms grid: at 3 steps/s with 2 s windows
    (speech 00-07 and 08-19, one step per call, the worst case) 2 steps of 61 and of 76
    differ from the one pass in the jitter, shimmer and HNR functionals (relative 1e-4 to
    1e-3): these follow the pitch tracker, whose Viterbi smoother decides a frame with up to
    40 frames (0.4 s) after it. With 0.2 s every step of those runs, and of 4 steps/s with
    2 and 4 s windows, is equal. A stream therefore waits ``STREAM_LOOKAHEAD`` = 0.5 s
    after a step (the smoother's 0.4 s plus the last analysis frame's 50 ms, so the bound
    holds by construction, not only on the speech measured); the first steps, whose window
    begins at 0, wait for one window of audio, as offline (they look ahead there).
    :func:`file_functionals`, which need not answer quickly, takes ``FILE_LOOKAHEAD``.
    """

    def __init__(self, window_seconds: float, sample_rate: int = SAMPLE_RATE,
                 source: str = "the stream", lookahead: float = STREAM_LOOKAHEAD) -> None:
        self.window_seconds, self.sample_rate, self.source = window_seconds, sample_rate, source
        self.lookahead = lookahead
        self.window_frames = int(round(window_seconds / LLD_HOP))
        self.frame_samples = int(round(sample_rate * LLD_HOP))
        self.context_frames = int(round(STREAM_CONTEXT / LLD_HOP))
        self.kept = np.zeros(0, dtype=np.float32)  # samples from ``offset`` on
        self.offset = 0  # samples of the stream dropped before ``kept``
        self.hop = 0  # gcd of the window starts seen so far (0: all at 0)
        self.peak = 0.0

    @property
    def received(self) -> int:
        """Samples received so far."""
        return self.offset + self.kept.size

    def append(self, samples: np.ndarray) -> None:
        samples = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
        if samples.size:
            self.peak = max(self.peak, float(np.abs(samples).max()))
            self.kept = np.concatenate([self.kept, samples])

    def _first_frame(self, time: float) -> int:
        """The first LLD frame of the window of a step at ``time`` (as offline)."""
        return int(np.rint((max(time, self.window_seconds) - self.window_seconds) / LLD_HOP))

    def _end_sample(self, time: float) -> int:
        end = (max(time, self.window_seconds) + self.lookahead) * self.sample_rate
        return int(np.ceil(round(end, 6)))

    def ready(self, time: float) -> bool:
        """Whether the audio for the step at ``time`` has arrived."""
        return self.received >= self._end_sample(time)

    def features(self, times: np.ndarray) -> np.ndarray:
        """``(N, 88)`` functionals of ready steps at ``times (N,)``, increasing, each later
        than the steps asked before; the audio no later step needs is dropped."""
        times = np.asarray(times, dtype=np.float64)
        if times.size == 0:
            return np.zeros((0, len(EGEMAPS_NAMES)), dtype=np.float32)
        if not self.ready(times[-1]):
            raise ValueError(f"the audio for the step at {times[-1]} s has not arrived")
        out = self._compute(times, self._end_sample(times[-1]))
        # Later steps start their windows here or after; keep the context before it, from a
        # multiple of the hop so that finish() can take the grid of the whole recording.
        keep = self._piece_start(self._first_frame(times[-1]), self.hop) * self.frame_samples
        if keep > self.offset:
            self.kept = self.kept[keep - self.offset:].copy()
            self.offset = keep
        return out

    def finish(self, times: np.ndarray) -> np.ndarray:
        """The functionals of the steps at ``times`` once the audio has ended: as offline,
        a step whose window lies mostly after the end is NaN, one just past it takes the
        last full window; AvstanError when the whole audio is shorter than one window."""
        times = np.asarray(times, dtype=np.float64)
        if times.size == 0:
            return np.zeros((0, len(EGEMAPS_NAMES)), dtype=np.float32)
        # The piece holds the last full window too, with its context: steps past the end
        # of the sound take it (a video whose sound stops early has such steps).
        last_full = self.received // self.frame_samples - self.window_frames - 10
        return self._compute(times, self.received, anchor=max(0, last_full))

    def _piece_start(self, first_frame: int, hop: int) -> int:
        if hop == 0:
            return 0  # every window so far begins at 0: the audio is kept from there
        return max(0, (first_frame - self.context_frames) // hop * hop)

    def _compute(self, times: np.ndarray, end: int, anchor: int | None = None
                 ) -> np.ndarray:
        firsts = [self._first_frame(t) for t in times]
        self.hop = int(np.gcd.reduce([self.hop, *firsts]))
        start = self._piece_start(min(firsts[0], anchor if anchor is not None
                                      else firsts[0]), self.hop)
        if start * self.frame_samples < self.offset:
            raise ValueError("steps asked out of order: their audio was dropped")
        piece = self.kept[start * self.frame_samples - self.offset:end - self.offset]
        return egemaps_functionals(piece, self.sample_rate, times - start * LLD_HOP,
                                   self.window_seconds, source=self.source,
                                   hop_frames=self.hop or None)


# --------------------------------------------------------------------------- files


FILE_BATCH_SECONDS = 60.0  # audio between two openSMILE calls of file_functionals
# s of audio after a step that file_functionals waits for: beyond the 0.4 s the pitch
# tracker's Viterbi smoother looks ahead (see StreamingFunctionals)
FILE_LOOKAHEAD = 1.0


def file_functionals(path: str | Path, step_times: np.ndarray,
                     window_seconds: float = DEFAULT_AUDIO_WINDOW,
                     batch_seconds: float = FILE_BATCH_SECONDS) -> np.ndarray:
    """``egemaps_functionals(load_audio(path), SAMPLE_RATE, step_times, window_seconds)``,
    bit for bit, in memory that does not grow with the file: ``(N, 88)`` float32.

    The file is decoded in chunks (:func:`audio_chunks`) into a
    :class:`StreamingFunctionals`; every ``batch_seconds`` of audio the steps whose audio
    has arrived are computed in one openSMILE call (one call per step is ~45× slower), and
    the steps left at the end of the audio, NaN and last-full-window ones included, by
    :meth:`StreamingFunctionals.finish`. Each step gets ``FILE_LOOKAHEAD`` (1 s) of audio
    after it, where a live stream gets 0.5 s (see :class:`StreamingFunctionals` for why).
    Held at once: about ``batch_seconds + window + 2 s + one chunk (10 s)`` of samples
    and openSMILE's working set on them, besides the result. The same errors as
    :func:`load_audio` and :func:`egemaps_functionals` (AvstanError naming the file,
    NoAudioError), raised once the file is decoded: a file found truncated or silent at
    its end gives no features.
    """
    step_times = np.asarray(step_times, dtype=np.float64)
    if step_times.ndim != 1:
        raise ValueError(f"step_times must be (N,), got {step_times.shape}")
    if not np.isfinite(step_times).all() or np.any(np.diff(step_times) < 0):
        raise ValueError("step_times must be finite and increasing")
    return _functionals_as_audio_arrives(path, window_seconds, batch_seconds,
                                         lambda seconds: step_times.size,
                                         lambda start, stop: step_times[start:stop])[1]


def file_functionals_every_step(path: str | Path, step_rate: float,
                                window_seconds: float = DEFAULT_AUDIO_WINDOW,
                                batch_seconds: float = FILE_BATCH_SECONDS
                                ) -> tuple[np.ndarray, np.ndarray]:
    """The steps ``k / step_rate`` until the end of the audio of ``path`` (a final step
    less than half a step after it included, as for video) and their functionals, as
    :func:`file_functionals` computes them: ``times (N,)`` float64, ``features (N, 88)``.

    ``N = ceil(duration · step_rate + 0.5)`` depends on the audio's length, which is only
    known once it is decoded; steps are produced as the audio arrives (every step up to
    what has arrived belongs to the recording), so the file is decoded once.
    """
    if not (math.isfinite(step_rate) and step_rate > 0):
        raise ValueError(f"step_rate must be positive, got {step_rate}")
    return _functionals_as_audio_arrives(
        path, window_seconds, batch_seconds,
        lambda seconds: int(np.ceil(seconds * step_rate + 0.5)),
        lambda start, stop: np.arange(start, stop) / step_rate)


def _functionals_as_audio_arrives(path: str | Path, window_seconds: float,
                                  batch_seconds: float, step_count, step_times
                                  ) -> tuple[np.ndarray, np.ndarray]:
    """``step_count(seconds)``: how many steps the audio decoded so far (``seconds``
    long) has, never more than the whole file has; ``step_times(start, stop)``: the times
    of steps ``start..stop-1``."""
    if int(round(window_seconds / LLD_HOP)) < 10:
        raise ValueError(f"window_seconds must be at least {10 * LLD_HOP} s, "
                         f"got {window_seconds}")
    streaming = StreamingFunctionals(window_seconds, source=str(path),
                                     lookahead=FILE_LOOKAHEAD)
    batch_samples = max(1, int(batch_seconds * SAMPLE_RATE))
    rows, done, since = [], 0, 0  # computed rows, steps computed, samples since a batch
    for chunk in audio_chunks(path):
        streaming.append(chunk)
        since += chunk.size
        if since < batch_samples:
            continue
        since = 0
        candidates = step_times(done, step_count(streaming.received / SAMPLE_RATE))
        ready = 0
        while ready < candidates.size and streaming.ready(float(candidates[ready])):
            ready += 1
        if ready:
            rows.append(streaming.features(candidates[:ready]))
            done += ready
    duration = streaming.received / SAMPLE_RATE
    _check_long_enough(duration, window_seconds, str(path))  # also when there is no step
    total = step_count(duration)
    rows.append(streaming.finish(step_times(done, total)))
    return step_times(0, total), np.concatenate(rows)


# --------------------------------------------------------------------------- standardisation


IQR_TO_STD = 1.3489795  # interquartile range of a standard normal distribution


def fit_standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Robust per-feature statistics of training features: ``center (D,)``, ``scale (D,)``.

    ``center`` is the median and ``scale`` the interquartile range divided by 1.349, which
    equal the mean and standard deviation for normally distributed values. Why not the mean
    and standard deviation: functionals such as ``*_stddevNorm`` (a standard deviation
    divided by the mean of a signed descriptor) reach 1e3–1e5 times their typical size in
    the few windows where that mean passes near zero; one such window inflates the standard
    deviation and shifts the mean, and on unseen speech the next one gives |z| ~ 1e5. The
    median and quartiles ignore up to a quarter of the windows being extreme (they are
    unaffected by how extreme), and :func:`standardise` clips what remains.

    Non-finite values (NaN rows of steps without audio) are ignored, per feature. A feature
    whose interquartile range is zero (mostly constant in training) falls back to its
    standard deviation, and a constant one to a scale of 1, so scales are always positive.

    Parameters
    ----------
    features : (M, D) float
        Training features, one row per step (the train partition only).
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be (M, D), got {features.shape}")
    features = np.where(np.isfinite(features), features, np.nan)
    empty = ~np.isfinite(features).any(axis=0)
    if empty.any():
        raise AvstanError(f"cannot fit the audio standardisation: the training features have "
                          f"no finite value in column(s) {np.flatnonzero(empty)[:10].tolist()};"
                          " prepare the training recordings with audio")
    low, center, high = np.nanquantile(features, [0.25, 0.5, 0.75], axis=0)
    scale = (high - low) / IQR_TO_STD
    tiny = 1e-9 * np.maximum(1.0, np.abs(center))
    fallback = scale <= tiny
    if fallback.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a single value: std of 0
            spread = np.nanstd(features[:, fallback], axis=0)
        scale[fallback] = np.where(spread > tiny[fallback], spread, 1.0)
    return center.astype(np.float32), scale.astype(np.float32)


def standardise(features: np.ndarray, center: np.ndarray, scale: np.ndarray,
                clip: float = 5.0) -> np.ndarray:
    """``clip((features - center) / scale, -clip, clip)``, NaN set to 0 (the center):
    ``(..., D)`` float32, the same as the audio models' ``FeatureStandardiser``."""
    features = np.asarray(features, dtype=np.float32)
    center = np.asarray(center, dtype=np.float32)
    scale = np.asarray(scale, dtype=np.float32)
    if features.shape[-1:] != center.shape or center.shape != scale.shape:
        raise ValueError(f"features (..., D) {features.shape} do not match center "
                         f"{center.shape} and scale {scale.shape}")
    if not (np.isfinite(scale).all() and (scale > 0).all() and math.isfinite(clip)):
        raise ValueError("scales must be finite and positive, clip finite")
    z = (features - center) / scale
    return np.clip(np.nan_to_num(z, nan=0.0), -clip, clip).astype(np.float32)


def standardise_per_recording(features: np.ndarray, clip: float = 5.0) -> np.ndarray:
    """Each recording standardised with its own statistics, as AVEC systems normalise per
    speaker: :func:`fit_standardisation` on the recording's own steps, then
    :func:`standardise` (median and IQR / 1.349, z-scores clipped to ±``clip``, NaN → 0).
    ``features (N, D)`` → ``(N, D)`` float32. It removes a speaker's level (pitch, loudness,
    timbre) so a model sees how the speaker departs from their own habit; the price is
    that a recording of one emotion throughout loses its level too."""
    center, scale = fit_standardisation(features)
    return standardise(features, center, scale, clip)
