"""A voice-like audio track for the synthetic corpus, driven by the hidden valence/arousal.

:func:`synthesize_voice` turns a recording's per-step labels into a 16 kHz mono waveform
that eGeMAPS can read: not speech, but built the way a formant synthesiser builds speech,
so that openSMILE's pitch tracker, loudness, formant, spectral-slope and voicing
descriptors all find what they expect.

* **Source**: a Rosenberg glottal pulse (smooth flow, abrupt closure) at the fundamental
  F0, differentiated (lip radiation), with per-cycle jitter and shimmer and some
  aspiration noise.
* **Filter**: five formant resonators (the magnitude of a cascade of two-pole resonances)
  applied frame by frame in the short-time Fourier domain; F1–F3 follow one of five vowels
  per syllable (smoothed across syllable boundaries, like coarticulation), times the
  speaker's vocal-tract scale. An extra spectral tilt models voice quality.
* **Timing**: syllables (a consonant onset — none, a stop or a fricative — then a vowel
  nucleus with a rise-fall amplitude and a pitch accent) grouped into phrases of 5–15
  syllables with pauses between them; F0 declines over each phrase.
* **Background noise**: coloured noise (white to brown) at a per-recording level.

What the labels change (per unit of label, at cue strength 1):

* **arousal** — F0 +3 semitones, level +5 dB, speaking rate ×2^0.3 (about +23 %), pauses
  shorter, pitch accents larger, voice a little brighter (+1 dB/octave): the classic
  vocal-effort cues, and the ones eGeMAPS measures best;
* **valence** — weaker: formants +4 % (lip spreading in a smile shortens the tract),
  spectral tilt +1.5 dB/octave (brighter) and F0 +0.7 semitones. openSMILE sees the
  brightness (alpha ratio +1.7 to +4.9 dB) and the F0 reliably, the formant shift only
  inconsistently (its LPC formant tracker moves more with F0 and tilt than with it).

What openSMILE measured (tests/data/synthetic/test_voice.py): between arousal -0.8 and
+0.8, F0 rose by 4.4–5.0 semitones and voiced loudness by ×1.2–1.9 over 8 speakers; over
60 s recordings with the corpus's label processes, 1 s averages of F0 correlate 0.74–0.81
with arousal and of loudness 0.48–0.66. A ridge regression from the 88 functionals (4 s
windows) of 16 recordings to 8 unseen ones reached test CCC 0.56–0.63 for arousal and
-0.05–0.37 for valence over five corpus seeds.

Everything else is per recording and independent of the labels: the speaker (base F0 in
a low or a high range, vocal-tract scale, speaking rate, level at the microphone, voice
quality, breathiness, jitter, pitch-accent size) and the background noise (level and
colour). These differ between recordings by more than the label effects do, so the audio
is informative about arousal but not sufficient, and weaker about valence — a regression
from its features has to generalise across speakers, as on real corpora.

Deterministic in ``seed``; every random factor has its own stream. Vectorised: syllable
timing, pitch and levels live on a 1 kHz control timeline, the vocal tract works on STFT
frames, and the only Python loop runs over phrases (a few per 10 s). A 60 s recording
renders in 0.3–0.4 s of CPU; openSMILE's eGeMAPS on it takes about 1.3 s.
"""

from __future__ import annotations

import math
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avstan.errors import AvstanError

__all__ = [
    "CONTROL_RATE",
    "SAMPLE_RATE",
    "Speaker",
    "VoiceTracks",
    "read_wav",
    "sample_speaker",
    "synthesize_voice",
    "voice_tracks",
    "write_wav",
]

SAMPLE_RATE = 16000

# Label effects per unit of label at cue strength 1 (see the module docstring).
AROUSAL_F0_SEMITONES = 3.0
AROUSAL_LEVEL_DB = 5.0
AROUSAL_RATE_OCTAVES = 0.3
AROUSAL_PAUSE_OCTAVES = 0.5  # pauses shrink by 2^(-0.5 a)
AROUSAL_ACCENT_GAIN = 0.4  # pitch accents grow by (1 + 0.4 a)
AROUSAL_TILT_DB_PER_OCTAVE = 1.0
VALENCE_F0_SEMITONES = 0.7
VALENCE_FORMANT_SHIFT = 0.04
VALENCE_TILT_DB_PER_OCTAVE = 1.5

# F1, F2, F3 (Hz) of /a e i o u/ for a vocal-tract scale of 1 (an adult male voice).
_VOWELS = np.array([[730.0, 1090.0, 2440.0], [530.0, 1840.0, 2480.0], [270.0, 2290.0, 3010.0],
                    [570.0, 840.0, 2410.0], [300.0, 870.0, 2240.0]])
_HIGH_FORMANTS = np.array([3500.0, 4500.0])  # F4, F5, fixed for a scale of 1
_BANDWIDTHS = np.array([80.0, 100.0, 140.0, 200.0, 260.0])
# Rosenberg pulse, in fractions of the glottal period: opening and closing phases.
_OPENING, _CLOSING = 0.40, 0.16
# Speech at speaker gain 0 dB and neutral labels sits near _NOMINAL_RMS (-30 dBFS) while
# voiced, in the median over speakers: _LEVEL was measured once to get there (a test
# checks it). The background-noise level is set relative to _NOMINAL_RMS.
_NOMINAL_RMS = 0.03
_LEVEL = 0.00405
_N_FFT, _HOP = 512, 128  # 32 ms frames, 8 ms hop at 16 kHz
_DECIMATION = 16  # samples per control step
CONTROL_RATE = SAMPLE_RATE // _DECIMATION  # 1 kHz: syllables, pitch, levels


@dataclass(frozen=True)
class Speaker:
    """Per-recording voice and room, independent of the labels."""

    f0_hz: float  # pitch at neutral arousal and valence
    formant_scale: float  # vocal-tract scale: multiplies every formant
    syllable_rate: float  # syllables per second at neutral arousal
    gain_db: float  # level at the microphone (voice and distance)
    tilt_db_per_octave: float  # voice quality: extra spectral tilt (negative: darker)
    breathiness: float  # aspiration noise relative to the voiced source
    jitter: float  # relative cycle-to-cycle F0 perturbation (std)
    shimmer: float  # relative cycle-to-cycle amplitude perturbation (std)
    accent_semitones: float  # typical size of the per-syllable pitch accents
    snr_db: float  # nominal speech level over background noise (at voice_noise 1)
    noise_color: float  # spectral exponent of the noise power (0 white, 1 pink, 2 brown)


def sample_speaker(rng: np.random.Generator) -> Speaker:
    """A random speaker and room: a low (male-like) or high (female-like) voice."""
    high = rng.random() < 0.5
    f0 = math.exp(rng.normal(math.log(205.0 if high else 115.0), 0.12))
    scale = (1.16 if high else 1.0) * rng.uniform(0.94, 1.06)
    return Speaker(
        f0_hz=f0, formant_scale=scale, syllable_rate=float(rng.uniform(3.5, 5.0)),
        gain_db=float(rng.uniform(-5.0, 5.0)), tilt_db_per_octave=float(rng.uniform(-2.0, 2.0)),
        breathiness=float(rng.uniform(0.02, 0.12)), jitter=float(rng.uniform(0.003, 0.012)),
        shimmer=float(rng.uniform(0.02, 0.08)), accent_semitones=float(rng.uniform(0.7, 2.0)),
        snr_db=float(rng.uniform(8.0, 25.0)), noise_color=float(rng.uniform(0.0, 2.0)),
    )


@dataclass(frozen=True)
class VoiceTracks:
    """The control signals of one rendering at :data:`CONTROL_RATE`, (M,) each."""

    times: np.ndarray  # seconds
    f0_hz: np.ndarray  # pitch, also where unvoiced
    level_db: np.ndarray  # voiced gain (speaker + arousal + syllable stress)
    voiced: np.ndarray  # voiced amplitude envelope in [0, 1] (0 in pauses and onsets)
    speaking: np.ndarray  # bool, inside a phrase
    syllable_rate: np.ndarray  # syllables per second (while speaking)


def _interp_labels(labels: np.ndarray, times: np.ndarray, t: np.ndarray):
    labels = np.asarray(labels, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[1] != 2 or labels.shape[0] != times.shape[0]:
        raise ValueError(f"labels must be (N, 2) valence/arousal for N times, got "
                         f"{labels.shape} and {times.shape}")
    if not np.isfinite(labels).all():
        raise ValueError("labels must be finite to drive the voice")
    labels = np.clip(labels, -1.0, 1.0)
    return np.interp(t, times, labels[:, 0]), np.interp(t, times, labels[:, 1])


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average (same length) along axis 0 of (F, D), edges held."""
    if width <= 1:
        return x
    before = width // 2
    padded = np.pad(x, ((before, width - 1 - before), (0, 0)), mode="edge")
    cumulative = np.cumsum(np.concatenate([np.zeros((1, x.shape[1])), padded]), axis=0)
    return (cumulative[width:] - cumulative[:-width]) / width


def _phrases(rng: np.random.Generator, cumulative: np.ndarray, arousal: np.ndarray,
             sample_rate: int):
    """Phrase starts, ends (sample indices) and syllable counts: 5–15 syllables each, pauses
    of 0.25–0.9 s (shorter when aroused) between them, a short silence at the start."""
    length = cumulative.shape[0]
    starts, ends, counts = [], [], []
    start = int(rng.uniform(0.1, 0.6) * sample_rate)
    while start < length - 1:
        count = int(rng.integers(5, 16))
        end = int(np.searchsorted(cumulative, cumulative[start] + count))
        starts.append(start)
        ends.append(min(end, length))
        counts.append(count)
        shrink = 2.0 ** (-AROUSAL_PAUSE_OCTAVES * arousal[min(end, length - 1)])
        pause = rng.uniform(0.25, 0.9) * shrink
        start = end + max(int(pause * sample_rate), 1)
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64), np.array(counts)


def _rosenberg(phase: np.ndarray) -> np.ndarray:
    """Glottal flow in [0, 1] at phase (fraction of the period): opening, closing, closed."""
    opening = 0.5 * (1.0 - np.cos(np.pi * phase / _OPENING))
    closing = np.cos(0.5 * np.pi * (phase - _OPENING) / _CLOSING)
    return np.where(phase < _OPENING, opening,
                    np.where(phase < _OPENING + _CLOSING, closing, 0.0))


def _shape_spectrum(x: np.ndarray, gain) -> np.ndarray:
    """Filter a whole signal by a zero-phase magnitude response ``gain(freqs_hz)``."""
    freqs = np.fft.rfftfreq(x.shape[0], 1.0 / SAMPLE_RATE)
    return np.fft.irfft(np.fft.rfft(x) * gain(freqs), n=x.shape[0])


_WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT)  # periodic Hann
_PAD = _N_FFT - _HOP  # so that every sample lies in _N_FFT / _HOP frames


def _stft(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed STFT, hop n_fft/4: spectra (F, n_fft // 2 + 1) and the sample index
    (F,) of each frame's centre (the first and last few lie outside the signal)."""
    num_frames = (_PAD + x.shape[0] - 1) // _HOP + 1
    padded = np.zeros((num_frames - 1) * _HOP + _N_FFT)
    padded[_PAD:_PAD + x.shape[0]] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP]
    centres = np.arange(num_frames) * _HOP + _N_FFT // 2 - _PAD
    return np.fft.rfft(frames * _WINDOW, axis=1), centres


def _istft(spectra: np.ndarray, length: int) -> np.ndarray:
    """Inverse of :func:`_stft` by weighted overlap-add (exact for unmodified spectra)."""
    frames = np.fft.irfft(spectra, n=_N_FFT, axis=1) * _WINDOW
    num_frames = frames.shape[0]
    hops = _N_FFT // _HOP
    out = np.zeros((num_frames + hops - 1) * _HOP)
    for j in range(hops):  # one overlap-add per quarter frame: a loop of 4
        out[j * _HOP:j * _HOP + num_frames * _HOP] += frames[:, j * _HOP:(j + 1) * _HOP].ravel()
    out /= float((_WINDOW ** 2).reshape(hops, _HOP).sum(0).mean())  # 1.5 for Hann at 75 %
    return out[_PAD:_PAD + length]


def _formant_envelope(freqs: np.ndarray, formants: np.ndarray,
                      bandwidths: np.ndarray) -> np.ndarray:
    """|H(f)| of a cascade of two-pole resonances, unit gain at 0 Hz.

    freqs (K,), formants and bandwidths (F, R) → (F, K) float32. Each resonance is
    (F² + b²) / sqrt(((f - F)² + b²) ((f + F)² + b²)) with b the half bandwidth.
    """
    f = freqs.astype(np.float32)[None, :]
    power = np.ones((formants.shape[0], f.shape[1]), dtype=np.float32)
    for r in range(formants.shape[1]):  # a loop over the five resonances
        centre = formants[:, r:r + 1].astype(np.float32)
        b2 = (0.5 * bandwidths[:, r:r + 1]).astype(np.float32) ** 2
        num = centre ** 2 + b2
        power *= num * num / (((f - centre) ** 2 + b2) * ((f + centre) ** 2 + b2))
    return np.sqrt(power, out=power)


def voice_tracks(labels: np.ndarray, times: np.ndarray,
                 seed: int | np.random.SeedSequence, **kwargs) -> VoiceTracks:
    """The control signals :func:`synthesize_voice` uses for these arguments."""
    return _render(labels, times, seed, want_tracks=True, **kwargs)[1]


def synthesize_voice(labels: np.ndarray, times: np.ndarray, seed: int | np.random.SeedSequence,
                     *, noise: float = 1.0, arousal_cue: float = 1.0,
                     valence_cue: float = 1.0, duration: float | None = None) -> np.ndarray:
    """A voice-like waveform (L,) float32 in [-1, 1] at :data:`SAMPLE_RATE`.

    Args:
        labels: (N, 2) valence, arousal in [-1, 1] at ``times``; linearly interpolated
            in between, held beyond the ends.
        times: (N,) step times in seconds, increasing.
        seed: the recording's voice seed; the same seed gives the same waveform.
        noise: scales the background-noise amplitude (0: none, 1: the speaker's SNR).
        arousal_cue, valence_cue: scale every effect of arousal / valence (0 removes it).
        duration: seconds of audio (default: one step past the last time), so the
            waveform covers the recording's timeline [0, duration).
    """
    return _render(labels, times, seed, noise=noise, arousal_cue=arousal_cue,
                   valence_cue=valence_cue, duration=duration)[0]


def _upsample(x: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation of a control signal (one value every _DECIMATION samples, the
    first at sample 0) to ``length`` samples."""
    pieces = (length + _DECIMATION - 1) // _DECIMATION
    x = np.concatenate([x, x[-1:]]) if x.shape[0] < pieces + 1 else x[:pieces + 1]
    frac = np.arange(_DECIMATION) / _DECIMATION
    out = x[:-1, None] + (x[1:] - x[:-1])[:, None] * frac[None, :]
    return out.ravel()[:length]


def _render(labels, times, seed, *, noise: float = 1.0, arousal_cue: float = 1.0,
            valence_cue: float = 1.0, duration: float | None = None,
            want_tracks: bool = False):
    times = np.asarray(times, dtype=np.float64)
    if duration is None:
        step = float(np.median(np.diff(times))) if times.shape[0] > 1 else 0.25
        duration = float(times[-1]) + step
    sr, cr = SAMPLE_RATE, CONTROL_RATE
    length = int(round(duration * sr))
    if length < _N_FFT:
        raise ValueError(f"a voice needs at least {_N_FFT / sr:.3f} s, got {duration} s")
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    s_speaker, s_phrases, s_syllables, s_cycles, s_breath, s_noise = ss.spawn(6)
    speaker = sample_speaker(np.random.default_rng(s_speaker))
    # Everything that varies at most at syllable or glottal-cycle rate lives on a control
    # timeline at 1 kHz; only the glottal pulses and the noises are made per sample.
    control_length = length // _DECIMATION + 2
    control_times = np.arange(control_length) / cr
    valence, arousal = _interp_labels(labels, times, control_times)
    a, v = arousal_cue * arousal, valence_cue * valence

    # Timing: a syllable clock that runs at the speaking rate inside phrases.
    rate = speaker.syllable_rate * 2.0 ** (AROUSAL_RATE_OCTAVES * a)
    cumulative = np.cumsum(rate) / cr
    starts, ends, counts = _phrases(np.random.default_rng(s_phrases), cumulative, a, cr)
    index = np.arange(control_length)
    phrase = np.clip(np.searchsorted(starts, index, side="right") - 1, 0, None)
    speaking = (index >= starts[phrase]) & (index < ends[phrase])
    local = np.where(speaking, cumulative - cumulative[starts[phrase]], 0.0)
    local = np.minimum(local, counts[phrase] - 1e-9)
    first_syllable = np.concatenate([[0], np.cumsum(counts)[:-1]])
    syllable = first_syllable[phrase] + np.floor(local).astype(np.int64)
    within = local - np.floor(local)

    rng = np.random.default_rng(s_syllables)
    num_syllables = int(counts.sum())
    vowel = rng.integers(0, len(_VOWELS), num_syllables)
    onset_kind = rng.choice(3, num_syllables, p=[0.35, 0.35, 0.30])  # none, stop, fricative
    onset_length = np.where(onset_kind == 0, 0.08, 0.28)[syllable]
    accent = rng.normal(0.0, 1.0, num_syllables)
    stress_db = rng.normal(0.0, 1.5, num_syllables)

    # Envelopes: a rise-fall vowel nucleus after the onset; stops are a closure and a burst,
    # fricatives a noise band.
    nucleus = np.clip((within - onset_length) / (1.0 - onset_length), 0.0, 1.0)
    voiced = np.where(speaking, np.sin(np.pi * nucleus) ** 0.6, 0.0)
    in_onset = speaking & (within < onset_length)
    kind = onset_kind[syllable]
    onset_pos = within / onset_length
    frication = np.where(in_onset & (kind == 2), np.sin(np.pi * onset_pos) ** 2, 0.0)
    burst = np.where(in_onset & (kind == 1) & (onset_pos > 0.7),
                     np.exp(-(onset_pos - 0.7) * 25.0), 0.0)

    # Pitch: speaker level, label cues, per-syllable accents, declination over each phrase.
    accent_size = speaker.accent_semitones * np.clip(1.0 + AROUSAL_ACCENT_GAIN * a, 0.2, None)
    position = np.where(speaking, local / counts[phrase], 0.0)
    semitones = (AROUSAL_F0_SEMITONES * a + VALENCE_F0_SEMITONES * v
                 + accent_size * accent[syllable] * np.sin(np.pi * within)
                 + 1.5 - 3.0 * position)
    f0 = speaker.f0_hz * 2.0 ** (semitones / 12.0)
    level_db = speaker.gain_db + AROUSAL_LEVEL_DB * a + stress_db[syllable]

    # Glottal source: jitter and shimmer per cycle (counted on the unperturbed phase).
    rng = np.random.default_rng(s_cycles)
    cycle = np.floor(np.cumsum(f0) / cr).astype(np.int64)
    num_cycles = int(cycle[-1]) + 1
    jitter = 1.0 + speaker.jitter * rng.standard_normal(num_cycles)
    shimmer = 1.0 + speaker.shimmer * rng.standard_normal(num_cycles)
    phase = np.cumsum(_upsample(f0 * jitter[cycle], length)) / sr
    flow = _rosenberg(phase - np.floor(phase))
    # Lip radiation: d/dt; per unit of the speaker's period, so that a high voice is not
    # louder than a low one for that reason alone (a rising F0 within a voice still is).
    excitation = np.diff(flow, prepend=flow[0]) * (sr / speaker.f0_hz)
    rng = np.random.default_rng(s_breath)
    excitation += speaker.breathiness * 0.3 * flow * rng.standard_normal(length)
    excitation *= _upsample(voiced * shimmer[cycle], length)

    # Vocal tract: formants per STFT frame (vowel of the syllable under the frame centre,
    # smoothed over 40 ms), spectral tilt for voice quality and the label cues, and the
    # level (it changes slowly, so per frame is fine).
    spectra, centres = _stft(excitation)
    centres = np.clip(centres // _DECIMATION, 0, control_length - 1)  # on the control timeline
    scale = speaker.formant_scale * (1.0 + VALENCE_FORMANT_SHIFT * v[centres])
    low = _moving_average(_VOWELS[vowel[syllable[centres]]], 5)
    formants = np.concatenate([low, np.broadcast_to(_HIGH_FORMANTS, (len(centres), 2))], 1)
    formants = formants * scale[:, None]
    bandwidths = np.broadcast_to(_BANDWIDTHS * np.sqrt(speaker.formant_scale), formants.shape)
    freqs = np.fft.rfftfreq(_N_FFT, 1.0 / sr)
    tilt = (speaker.tilt_db_per_octave + AROUSAL_TILT_DB_PER_OCTAVE * a[centres]
            + VALENCE_TILT_DB_PER_OCTAVE * v[centres])
    octaves = np.log2(np.maximum(freqs, 62.5) / 500.0)
    gain_db = tilt[:, None] * octaves[None, :] + level_db[centres, None]
    envelope = _formant_envelope(freqs, formants, bandwidths)
    envelope *= np.exp(gain_db.astype(np.float32) * np.float32(math.log(10.0) / 20.0))
    speech = _istft(spectra * (_LEVEL * envelope), length)

    # Consonant noise: a 2–7 kHz band; bursts a little broader and louder.
    consonant_level = 10.0 ** ((speaker.gain_db + AROUSAL_LEVEL_DB * a) / 20.0)
    consonant = _upsample((0.5 * frication + 0.8 * burst) * consonant_level, length)
    consonant *= rng.standard_normal(length)
    band = _shape_spectrum(consonant, lambda f: np.exp(-0.5 * ((f - 4500.0) / 1500.0) ** 2))
    speech += _NOMINAL_RMS * band

    # Background: coloured noise with a slow level drift (±2 dB), independent of the labels.
    if noise > 0:
        rng = np.random.default_rng(s_noise)
        background = _shape_spectrum(
            rng.standard_normal(length),
            lambda f: np.maximum(f, 50.0) ** (-speaker.noise_color / 2.0))
        background *= noise * _NOMINAL_RMS * 10.0 ** (-speaker.snr_db / 20.0) / (
            background.std() + 1e-12)
        knots = np.arange(0.0, duration + 2.0, 2.0)
        drift_db = 2.0 * np.tanh(0.5 * rng.normal(0.0, 1.0, knots.shape[0]))
        background *= _upsample(np.interp(control_times, knots, 10.0 ** (drift_db / 20.0)),
                                length)
        speech += background

    signal = np.clip(speech, -1.0, 1.0).astype(np.float32)
    tracks = None
    if want_tracks:
        tracks = VoiceTracks(times=control_times, f0_hz=f0, level_db=level_db, voiced=voiced,
                             speaking=speaking, syllable_rate=rate)
    return signal, tracks


# ---------------------------------------------------------------------------- wav files


def write_wav(path: str | Path, signal: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write a mono float signal in [-1, 1] as 16-bit PCM wav (values beyond are clipped)."""
    path = Path(path)
    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim != 1:
        raise ValueError(f"write_wav expects a mono (L,) signal, got {signal.shape}")
    pcm = np.round(np.clip(signal, -1.0, 1.0) * 32767.0).astype("<i2")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(int(sample_rate))
            out.writeframes(pcm.tobytes())
    except OSError as exc:
        raise AvstanError(f"{path}: cannot write the wav file ({exc.strerror}); "
                          "choose a writable folder") from None
    return path


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM mono wav as (signal (L,) float32 in [-1, 1], sample rate)."""
    with wave.open(str(path), "rb") as source:
        if source.getsampwidth() != 2 or source.getnchannels() != 1:
            raise AvstanError(f"{path}: expected 16-bit mono PCM, got "
                              f"{8 * source.getsampwidth()}-bit, "
                              f"{source.getnchannels()} channels")
        rate = source.getframerate()
        pcm = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")
    return (pcm / 32767.0).astype(np.float32), rate
