"""A synthetic face-video corpus whose emotion lives in a small, known part of the frame.

Each recording is a sequence of drawn faces (``crop_size`` × ``crop_size`` RGB, one frame
per step at ``step_rate`` steps/s). Two hidden, independent, smooth random processes in
[-1, 1] — valence and arousal — drive the face:

* **valence** bends the mouth (smile ↔ frown), widens it a little, and tilts the brows
  (inner ends down when negative, the "angry/sad" frown);
* **arousal** opens the mouth and raises both brows.

Everything else in the frame is a *distractor*: label-independent, each from its own
random stream, and together much stronger than the emotion, so that a model has to find
where to look. The distractors and why each is there:

* **head motion** — smooth translation, scale jitter and a little roll of the whole head:
  real crops are never perfectly aligned, and a model must track the mouth, not a pixel;
* **flicker** — global brightness and contrast changes: lighting changes are the largest
  pixel variance in real video and say nothing about emotion;
* **moving background** — a smooth noise texture plus a grating, drifting behind the head:
  clutter with temporal structure, so "whatever moves" is not a cue;
* **blinks and gaze shifts** — the eyes move a lot, right next to the brows, and mean
  nothing here (as in real faces, where they are only weakly tied to valence/arousal);
* **sensor noise** — independent Gaussian noise per pixel and channel;
* **decoy patch** — a disc fixed in the frame, behind the person (a lamp or a screen in
  the room; placed away from mouth and brows, where it is well visible), whose intensity
  follows a random process with *the same smoothness and distribution as the labels*:
  temporally it looks exactly like an emotion signal, so only the spatial location tells
  it apart;
* **identity** — skin, hair and iris colour, face width and eye spacing vary per
  recording, so a model cannot memorise one face.

The ground-truth salient mask (per frame, ``(N, S, S)`` bool) covers the mouth and the two
brows over their whole range of motion (boxes in face coordinates, dilated by one pixel)
and follows the head; it never includes the decoy. By construction the labels change
pixels only inside it: rendering the same recording with the labels set to 0 (neutral)
differs from the real rendering nowhere outside the mask (see
:func:`signal_variance_fraction`, which reports how small the emotional part of the pixel
variance is).

The recording also speaks: :mod:`avstan.data.synthetic_voice` renders a voice-like 16 kHz
track whose pitch, loudness and speaking rate follow arousal and whose formants and
spectral tilt follow valence (weaker), with a random speaker and background noise per
recording; its eGeMAPS functionals (88 per step, a window ending at each step) are stored
as ``audio_features``. Audio alone is informative about arousal but not sufficient, and
weaker about valence (see that module).

The generator is two-stage so that such counterfactual renderings are possible:
:func:`sample_processes` draws every random process of a recording (labels and
distractors, each from its own child of the recording's ``SeedSequence``), and
:func:`render` / :func:`render_float` turn them into frames deterministically. Replacing
one field of :class:`Processes` (``dataclasses.replace``) and rendering again changes
only that factor.

Geometry: pixel centres are at ``(i + 0.5)``; the face is drawn in *face units* (the face
half-height is about 1; at ``face_scale=1`` one face unit is ``S/2`` pixels, so the face
fills the crop like an aligned face crop). Shapes are signed-distance functions turned
into antialiased coverage with a one-pixel linear ramp, all vectorised over
``(frames, rows, columns)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from avstan.data.audio import egemaps_functionals
from avstan.data.store import PARTITIONS, Recording, RecordingStore
from avstan.data.synthetic_voice import SAMPLE_RATE as VOICE_SAMPLE_RATE
from avstan.data.synthetic_voice import synthesize_voice, write_wav
from avstan.errors import AvstanError

__all__ = [
    "PRESETS",
    "Identity",
    "Processes",
    "SyntheticConfig",
    "generate_corpus",
    "generate_recording",
    "recording_seed",
    "render",
    "render_float",
    "render_voice",
    "salient_mask",
    "sample_processes",
    "signal_variance_fraction",
    "step_times",
]

_CHUNK = 128  # frames rendered at once (bounds memory for long recordings / large crops)

# Face geometry in face units (y grows downwards). Amplitudes are per unit of label at
# expression_strength 1.
_EYE_Y = -0.17
_EYE_HALF_W = 0.14
_EYE_HALF_H = 0.075
_PUPIL_R = 0.055
_BROW_Y = -0.47
_BROW_HALF_LEN = 0.15
_BROW_R = 0.045  # half thickness
_BROW_RAISE = 0.07  # arousal → brows up
_BROW_TILT_IN = 0.05  # valence → inner ends up (positive) / down (negative)
_BROW_TILT_OUT = 0.025  # valence → outer ends slightly the other way
_MOUTH_Y = 0.47
_MOUTH_HALF_W = 0.27
_MOUTH_WIDEN = 0.04  # valence → wider smile
_MOUTH_CURVE = 0.12  # valence → corners up (smile) / down (frown)
_MOUTH_OPEN = 0.055  # arousal → half opening = _MOUTH_OPEN * (1 + arousal) * strength
_LIP = 0.045  # lip thickness
_MASK_MARGIN = 0.01  # extra face units around the mask boxes (then one pixel of dilation)


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that defines a synthetic corpus; :data:`PRESETS` holds named ones.

    Sizes and counts:
        crop_size: S, frames are ``(N, S, S, 3)`` uint8.
        step_rate: steps (frames) per second; labels live on the same timeline.
        steps_per_recording: N (240 = 60 s at 4 steps/s).
        num_train, num_devel, num_test: recordings per partition.
        seed: root seed; each recording's seed is derived from (seed, partition, index).

    Emotion:
        label_smoothness_seconds: time scale of the valence/arousal processes (their
            autocorrelation falls to 1/e at this lag). The decoy uses the same.
        expression_strength: scales every mouth/brow deformation (1 = clearly visible).
        eye_arousal: how much arousal widens the eyes. 0 by default, because the eyes are
            not in the salient mask: a non-zero value puts signal outside it.

    Distractors (0 switches each off):
        face_scale: face size relative to the crop (1 = face fills it, like an aligned
            crop; 0.5 = a face half that size moving inside a larger, cluttered frame).
        head_motion: std of the head translation, as a fraction of S (soft-bounded so the
            mouth and brows stay in the frame).
        scale_jitter: std of the relative head-size change.
        head_roll_degrees: std of the in-plane head rotation.
        motion_smoothness_seconds: time scale of head motion.
        flicker: std of the global brightness offset (×0.5) and of the log-contrast.
        flicker_smoothness_seconds: time scale of the flicker.
        background_strength: contrast of the moving background texture (0 = flat).
        background_speed: typical drift speed of the background, pixels per step.
        decoy_strength: intensity swing of the decoy patch (1 = from dark to bright).
        decoy_size: decoy radius as a fraction of S.
        noise_std: per-pixel, per-channel Gaussian sensor noise (intensity in [0, 1]).
        blink_rate: blinks per second (each lasts one or two steps).
        gaze_rate: gaze shifts (saccades) per second.

    Audio (the voice of :mod:`avstan.data.synthetic_voice`):
        audio: render the voice and store its eGeMAPS functionals as ``audio_features``
            (N, 88); False leaves the recording without audio (and much faster to make).
        audio_window_seconds: length of the eGeMAPS window that ends at each step. A
            recording must be at least this long (plus 50 ms) when ``audio`` is on.
        voice_noise: background-noise amplitude relative to each recording's own level
            (drawn per recording, 8–25 dB below the speech; 0 = clean).
        voice_arousal_cue, voice_valence_cue: scale every effect of arousal / valence on
            the voice (1 = the documented strengths, 0 = none).

    name: a label for the configuration, recorded in each recording's ``source``.
    """

    name: str = "default"
    crop_size: int = 48
    step_rate: float = 4.0
    steps_per_recording: int = 240
    num_train: int = 8
    num_devel: int = 3
    num_test: int = 3
    seed: int = 0
    label_smoothness_seconds: float = 8.0
    expression_strength: float = 1.0
    eye_arousal: float = 0.0
    face_scale: float = 1.0
    head_motion: float = 0.03
    scale_jitter: float = 0.03
    head_roll_degrees: float = 3.0
    motion_smoothness_seconds: float = 1.5
    flicker: float = 0.12
    flicker_smoothness_seconds: float = 1.0
    background_strength: float = 0.4
    background_speed: float = 0.5
    decoy_strength: float = 1.0
    decoy_size: float = 0.14
    noise_std: float = 0.03
    blink_rate: float = 0.3
    gaze_rate: float = 0.5
    audio: bool = True
    audio_window_seconds: float = 4.0
    voice_noise: float = 1.0
    voice_arousal_cue: float = 1.0
    voice_valence_cue: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if self.crop_size < 16:
            problems.append(f"crop_size must be at least 16, got {self.crop_size}")
        if not self.step_rate > 0:
            problems.append(f"step_rate must be positive, got {self.step_rate}")
        if self.steps_per_recording < 2:
            problems.append(f"steps_per_recording must be at least 2, got "
                            f"{self.steps_per_recording}")
        for key in ("num_train", "num_devel", "num_test", "seed"):
            if getattr(self, key) < 0:
                problems.append(f"{key} must be >= 0, got {getattr(self, key)}")
        if not 0.2 <= self.face_scale <= 1.3:
            problems.append(f"face_scale must be in [0.2, 1.3], got {self.face_scale}")
        if not 0 < self.decoy_size <= 0.3:
            problems.append(f"decoy_size must be in (0, 0.3], got {self.decoy_size}")
        if not self.audio_window_seconds >= 0.1:
            problems.append(f"audio_window_seconds must be at least 0.1, got "
                            f"{self.audio_window_seconds}")
        elif self.audio and (self.steps_per_recording / self.step_rate
                             < self.audio_window_seconds + 0.05):
            problems.append(f"with audio, a recording ({self.steps_per_recording} steps = "
                            f"{self.steps_per_recording / self.step_rate:g} s) must last at "
                            f"least audio_window_seconds + 0.05 s "
                            f"({self.audio_window_seconds + 0.05:g} s); set more steps, a "
                            "shorter window or audio: false")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "float" and not (math.isfinite(value) and value >= 0):
                problems.append(f"{f.name} must be finite and >= 0, got {value}")
        if problems:
            raise AvstanError("synthetic config: " + "; ".join(problems))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SyntheticConfig:
        """A named configuration from :data:`PRESETS`, with optional field overrides."""
        if name not in PRESETS:
            raise AvstanError(f"unknown synthetic preset {name!r}; choose one of "
                              f"{', '.join(sorted(PRESETS))}")
        return cls.from_dict({**asdict(PRESETS[name]), **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SyntheticConfig:
        """Build from a plain dict (e.g. a YAML section), checking keys and types.

        A key ``preset`` names the starting point (default: the dataclass defaults); the
        other keys override its fields. An unknown key or a value of the wrong type
        raises AvstanError naming it.
        """
        data = dict(data or {})
        base: dict[str, Any] = {}
        if "preset" in data:
            preset = data.pop("preset")
            if preset not in PRESETS:
                raise AvstanError(f"synthetic config: unknown preset {preset!r}; choose one "
                                  f"of {', '.join(sorted(PRESETS))}")
            base = asdict(PRESETS[preset])
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise AvstanError(f"synthetic config: unknown key {unknown[0]!r} (known keys: "
                              f"preset, {', '.join(known)})")
        for key, value in data.items():
            base[key] = _coerce(key, known[key], value)
        return cls(**base)


def _coerce(key: str, type_name: str, value: Any) -> Any:
    if type_name == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise AvstanError(f"synthetic config: {key} must be true or false, got {value!r}")
        return bool(value)
    if type_name == "str":
        if not isinstance(value, str):
            raise AvstanError(f"synthetic config: {key} must be a string, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise AvstanError(f"synthetic config: {key} must be a number, got {value!r}")
    if type_name == "int":
        if float(value) != int(value):
            raise AvstanError(f"synthetic config: {key} must be an integer, got {value!r}")
        return int(value)
    return float(value)


PRESETS: dict[str, SyntheticConfig] = {
    # Aligned-crop-like: the face fills the frame, moderate distractors. A plain 3D-CNN
    # learns this one; attention can only help with sample efficiency.
    "default": SyntheticConfig(name="default"),
    # A smaller face moving inside a cluttered frame, stronger decoy, weaker expression,
    # more noise and flicker: where knowing where to look should matter.
    "hard": SyntheticConfig(
        name="hard", face_scale=0.55, head_motion=0.12, scale_jitter=0.08,
        head_roll_degrees=8.0, flicker=0.2, background_strength=1.0, background_speed=1.0,
        decoy_strength=1.0, decoy_size=0.18, expression_strength=0.8, noise_std=0.06,
        blink_rate=0.4, gaze_rate=0.8,
    ),
    # No distractors at all: for debugging a model and for tests.
    "easy": SyntheticConfig(
        name="easy", head_motion=0.0, scale_jitter=0.0, head_roll_degrees=0.0, flicker=0.0,
        background_strength=0.0, background_speed=0.0, decoy_strength=0.0, noise_std=0.0,
        blink_rate=0.0, gaze_rate=0.0,
    ),
}


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Identity:
    """Per-recording face appearance (colours are RGB in [0, 1])."""

    skin: np.ndarray  # (3,)
    hair: np.ndarray  # (3,)
    iris: np.ndarray  # (3,)
    lips: np.ndarray  # (3,)
    shirt: np.ndarray  # (3,)
    face_width: float  # face half-width in face units (half-height is 1)
    eye_spacing: float  # horizontal distance of each eye from the midline, face units
    hairline: float  # y of the fringe, face units


@dataclass(frozen=True)
class Processes:
    """Every random quantity of one recording; :func:`render` is deterministic given it.

    N is ``config.steps_per_recording``, S ``config.crop_size``.
    """

    labels: np.ndarray  # (N, 2) float32 valence, arousal in [-1, 1]
    head_xy: np.ndarray  # (N, 2) head translation in pixels (x right, y down)
    head_scale: np.ndarray  # (N,) relative head size (1 = nominal)
    head_roll: np.ndarray  # (N,) in-plane rotation, radians
    brightness: np.ndarray  # (N,) additive offset to intensities in [0, 1]
    contrast: np.ndarray  # (N,) multiplicative contrast around mid-grey
    background_offset: np.ndarray  # (N, 2) int, texture translation in pixels (x, y)
    background_texture: np.ndarray  # (T, T, 3) float32, periodic, T = 2 S
    blink: np.ndarray  # (N,) eyelid closure in [0, 1]
    gaze: np.ndarray  # (N, 2) pupil offset in face units
    decoy: np.ndarray  # (N,) decoy intensity process in [-1, 1]
    decoy_center: np.ndarray  # (2,) decoy centre in pixels (x, y)
    decoy_color: np.ndarray  # (3,) decoy colour at full intensity
    identity: Identity
    noise_seed: int  # seeds the per-pixel sensor noise
    voice_seed: int  # seeds the voice (speaker, phrasing, noise); see synthetic_voice


def recording_seed(config: SyntheticConfig, partition: str, index: int) -> int:
    """The seed of recording ``index`` of ``partition``: from (config.seed, partition, index)."""
    if partition not in PARTITIONS:
        raise AvstanError(f"partition must be one of {PARTITIONS}, got {partition!r}")
    ss = np.random.SeedSequence(config.seed, spawn_key=(PARTITIONS.index(partition), index))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _smooth_process(rng: np.random.Generator, n: int, timescale_steps: float) -> np.ndarray:
    """Gaussian-filtered white noise, normalised to zero mean and unit std: (n,) float64.

    The Gaussian kernel has sigma = timescale/2, so the autocorrelation
    exp(-lag² / (4 sigma²)) falls to 1/e at lag = timescale.
    """
    sigma = max(timescale_steps / 2.0, 1e-6)
    pad = int(math.ceil(4 * sigma))
    white = rng.standard_normal(n + 2 * pad)
    if pad > 0:
        k = np.arange(-pad, pad + 1)
        kernel = np.exp(-0.5 * (k / sigma) ** 2)
        x = np.convolve(white, kernel / kernel.sum(), mode="valid")
    else:
        x = white[:n]
    x = x - x.mean()
    std = x.std()
    return x / std if std > 0 else x


def _label_like(rng: np.random.Generator, n: int, timescale_steps: float) -> np.ndarray:
    """A label-like process in [-1, 1] (std about 0.4): squashed smooth noise plus an offset.

    The per-recording offset (a "mood") makes recordings differ in their mean, as real
    annotations do; tanh keeps the values in range without saturating them.
    """
    z = _smooth_process(rng, n, timescale_steps)
    offset = 0.35 * rng.standard_normal()
    return np.tanh(0.5 * (z + offset))


def _events(rng: np.random.Generator, n: int, rate_per_step: float) -> np.ndarray:
    """Indices of Poisson events over n steps, (k,) int."""
    if rate_per_step <= 0:
        return np.zeros(0, dtype=int)
    return np.flatnonzero(rng.random(n) < min(rate_per_step, 1.0))


def _blinks(rng: np.random.Generator, n: int, rate_per_step: float) -> np.ndarray:
    """Eyelid closure (n,) in [0, 1]: brief closures at random times (1–2 steps each)."""
    closure = np.zeros(n)
    for t in _events(rng, n, rate_per_step):
        depth = rng.uniform(0.6, 1.0)
        closure[t] = max(closure[t], depth)
        if rng.random() < 0.4 and t + 1 < n:  # a slower blink spans a second step
            closure[t + 1] = max(closure[t + 1], depth * rng.uniform(0.3, 0.8))
    return closure


def _gaze(rng: np.random.Generator, n: int, rate_per_step: float) -> np.ndarray:
    """Pupil offsets (n, 2) in face units: fixations held between random saccades."""
    gaze = np.zeros((n, 2))
    if rate_per_step <= 0:
        return gaze
    current = np.zeros(2)
    jumps = set(_events(rng, n, rate_per_step).tolist())
    for t in range(n):
        if t in jumps:
            current = rng.uniform(-1, 1, 2) * np.array([0.07, 0.03])
        gaze[t] = current
    return gaze


def _texture(rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    """A periodic (size, size, 3) background in [0, 1]: low-pass noise plus a grating."""
    if strength <= 0:
        color = rng.uniform(0.3, 0.7, 3)
        return np.broadcast_to(color, (size, size, 3)).astype(np.float32)
    freq = np.fft.fftfreq(size)
    radius = np.hypot(freq[:, None], freq[None, :])
    spectrum = np.exp(-0.5 * (radius / 0.06) ** 2)
    noise = rng.standard_normal((size, size))
    tex = np.real(np.fft.ifft2(np.fft.fft2(noise) * spectrum))
    tex = tex / (tex.std() + 1e-12)
    cycles = rng.integers(2, 6, 2)  # integer cycles keep the grating periodic
    yy, xx = np.mgrid[0:size, 0:size] / size
    tex = tex + 0.8 * np.sin(2 * np.pi * (cycles[0] * xx + cycles[1] * yy) + rng.uniform(0, 7))
    tex = np.tanh(0.6 * tex)  # in (-1, 1)
    color_a, color_b = rng.uniform(0.15, 0.85, (2, 3))
    mix = 0.5 + 0.5 * tex[..., None]
    base = 0.5 * (color_a + color_b)
    out = base + strength * (color_a * (1 - mix) + color_b * mix - base)
    return np.clip(out, 0, 1).astype(np.float32)


def _identity(rng: np.random.Generator) -> Identity:
    light, dark = np.array([0.96, 0.80, 0.68]), np.array([0.42, 0.28, 0.20])
    skin = light + rng.uniform() * (dark - light) + rng.normal(0, 0.02, 3)
    hairs = np.array([[0.10, 0.07, 0.05], [0.30, 0.18, 0.08], [0.75, 0.60, 0.30],
                      [0.45, 0.20, 0.08], [0.55, 0.55, 0.55]])
    hair = hairs[rng.integers(len(hairs))] + rng.normal(0, 0.03, 3)
    irises = np.array([[0.25, 0.15, 0.08], [0.15, 0.35, 0.55], [0.20, 0.40, 0.20]])
    iris = irises[rng.integers(len(irises))]
    lips = np.array([0.65, 0.22, 0.25]) * rng.uniform(0.8, 1.1) + rng.normal(0, 0.02, 3)
    return Identity(
        skin=np.clip(skin, 0, 1), hair=np.clip(hair, 0, 1), iris=iris,
        lips=np.clip(lips, 0, 1), shirt=rng.uniform(0.1, 0.9, 3),
        face_width=float(rng.uniform(0.72, 0.80)), eye_spacing=float(rng.uniform(0.30, 0.35)),
        hairline=float(rng.uniform(-0.80, -0.68)),
    )


def sample_processes(config: SyntheticConfig, seed: int | np.random.SeedSequence) -> Processes:
    """Draw all random processes of one recording; each factor has its own random stream.

    The label stream is separate from every distractor stream, so distractors are
    independent of the labels by construction (not merely uncorrelated on average).
    """
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    # The voice's stream is the last child: adding it left the nine before it unchanged.
    (s_labels, s_head, s_flicker, s_background, s_blink, s_gaze, s_decoy, s_identity,
     s_noise, s_voice) = ss.spawn(10)
    n, size, rate = config.steps_per_recording, config.crop_size, config.step_rate

    rng = np.random.default_rng(s_labels)
    label_steps = config.label_smoothness_seconds * rate
    labels = np.stack([_label_like(rng, n, label_steps), _label_like(rng, n, label_steps)], 1)

    rng = np.random.default_rng(s_head)
    motion_steps = config.motion_smoothness_seconds * rate
    # The mouth and brows (within 0.75 face units of the centre) must stay in the frame.
    reach = 0.5 * size * config.face_scale * 0.75 * (1 + 2 * config.scale_jitter)
    limit = max(0.5 * size - reach - 1.0, 0.0)
    head_xy = np.stack([_smooth_process(rng, n, motion_steps) for _ in range(2)], 1)
    spread = config.head_motion * size
    head_xy = limit * np.tanh(spread * head_xy / limit) if limit > 0 else 0 * head_xy
    head_scale = np.exp(config.scale_jitter * np.clip(_smooth_process(rng, n, motion_steps),
                                                      -2.5, 2.5))
    head_roll = np.deg2rad(config.head_roll_degrees) * np.clip(
        _smooth_process(rng, n, motion_steps), -2.5, 2.5)

    rng = np.random.default_rng(s_flicker)
    flicker_steps = config.flicker_smoothness_seconds * rate
    brightness = 0.5 * config.flicker * _smooth_process(rng, n, flicker_steps)
    contrast = np.exp(config.flicker * np.clip(_smooth_process(rng, n, flicker_steps), -3, 3))

    rng = np.random.default_rng(s_background)
    texture = _texture(rng, 2 * size, config.background_strength)
    velocity = rng.normal(0, 1, 2) + 0.5 * np.stack(
        [_smooth_process(rng, n, 2 * motion_steps) for _ in range(2)], 1)
    drift = np.cumsum(config.background_speed * velocity / np.sqrt(1.25), axis=0)
    background_offset = np.round(drift).astype(np.int64)

    blink = _blinks(np.random.default_rng(s_blink), n, config.blink_rate / rate)
    gaze = _gaze(np.random.default_rng(s_gaze), n, config.gaze_rate / rate)
    identity = _identity(np.random.default_rng(s_identity))

    rng = np.random.default_rng(s_decoy)
    decoy = _label_like(rng, n, label_steps)
    decoy_color = rng.uniform(0.5, 1.0, 3)
    decoy_color = decoy_color / decoy_color.max()
    processes = Processes(
        labels=labels.astype(np.float32), head_xy=head_xy, head_scale=head_scale,
        head_roll=head_roll, brightness=brightness, contrast=contrast,
        background_offset=background_offset, background_texture=texture, blink=blink,
        gaze=gaze, decoy=decoy, decoy_center=np.full(2, size / 2.0), decoy_color=decoy_color,
        identity=identity, noise_seed=int(s_noise.generate_state(1, dtype=np.uint32)[0]),
        voice_seed=int(s_voice.generate_state(1, dtype=np.uint32)[0]),
    )
    center = _place_decoy(config, processes, rng)
    return replace(processes, decoy_center=center)


def _place_decoy(config: SyntheticConfig, processes: Processes,
                 rng: np.random.Generator) -> np.ndarray:
    """A decoy centre (x, y) in pixels: where it is well visible and away from mouth/brows.

    Candidates lie on a grid inside the frame. Preferred are those whose disc never
    touches the salient mask (union over all frames, one pixel of margin), else those
    that touch it least; among these, one is drawn at random from the ones whose disc is
    at least 60 % as visible (not hidden behind the person, on average) as the best one.
    The decoy is drawn behind the person, so even where the moving head passes over it,
    it never mixes with the mouth or brows.
    """
    size = config.crop_size
    radius = config.decoy_size * size
    union = np.zeros((size, size), dtype=bool)
    exposed = np.zeros((size, size))
    for start in range(0, config.steps_per_recording, _CHUNK):
        sl = slice(start, start + _CHUNK)
        coords = _face_coords(config, processes, sl)
        union |= _mask_chunk(config, processes, sl, coords).any(0)
        shoulders, hair_cap, face, _ = _person_layers(*coords, processes.identity)
        exposed += ((1 - shoulders) * (1 - hair_cap) * (1 - face)).sum(0)
    exposed /= config.steps_per_recording
    lo, hi = radius + 1.0, size - radius - 1.0
    grid = np.linspace(lo, hi, 5)
    candidates = np.array([(x, y) for y in grid for x in grid])
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    discs = [np.hypot(xx - x, yy - y) for x, y in candidates]
    overlap = np.array([union[d < radius + 1.5].sum() for d in discs])
    visible = np.array([exposed[d < radius].sum() for d in discs])
    ok = np.flatnonzero(overlap == overlap.min())
    ok = ok[visible[ok] >= 0.6 * visible[ok].max()]
    return candidates[rng.choice(ok)].astype(np.float64)


# --------------------------------------------------------------------------- rendering


def _coverage(d_px: np.ndarray) -> np.ndarray:
    """Antialiased coverage in [0, 1] from a signed distance in pixels (negative inside)."""
    return np.clip(0.5 - d_px, 0.0, 1.0)


def _ellipse_sd(u, v, cu, cv, a, b):
    """Approximate signed distance (face units) to an axis-aligned ellipse."""
    du, dv = (u - cu) / a, (v - cv) / b
    k0 = np.sqrt(du * du + dv * dv)
    k1 = np.sqrt((du / a) ** 2 + (dv / b) ** 2) + 1e-9
    return k0 * (k0 - 1.0) / k1


def _segment_sd(u, v, au, av, bu, bv, r):
    """Signed distance (face units) to a capsule: the segment a→b thickened by r."""
    pu, pv, du, dv = u - au, v - av, bu - au, bv - av
    h = np.clip((pu * du + pv * dv) / (du * du + dv * dv + 1e-12), 0.0, 1.0)
    return np.hypot(pu - du * h, pv - dv * h) - r


def _box_sd(u, v, cu, cv, hu, hv):
    """A lower bound of the distance (face units) to an axis-aligned box; < 0 inside."""
    return np.maximum(np.abs(u - cu) - hu, np.abs(v - cv) - hv)


def _face_coords(config: SyntheticConfig, processes: Processes, sl: slice):
    """Face coordinates (u, v) of every pixel, (n, S, S) each, and pixels per face unit (n,1,1)."""
    size = config.crop_size
    col = (np.arange(size, dtype=np.float32) + 0.5)[None, None, :]
    row = (np.arange(size, dtype=np.float32) + 0.5)[None, :, None]
    xy = processes.head_xy[sl]
    cx = (size / 2.0 + xy[:, 0])[:, None, None].astype(np.float32)
    cy = (size / 2.0 + xy[:, 1])[:, None, None].astype(np.float32)
    unit = (0.5 * size * config.face_scale * processes.head_scale[sl])[:, None, None]
    unit = unit.astype(np.float32)
    cos = np.cos(processes.head_roll[sl])[:, None, None].astype(np.float32)
    sin = np.sin(processes.head_roll[sl])[:, None, None].astype(np.float32)
    dx, dy = col - cx, row - cy
    u = (cos * dx + sin * dy) / unit
    v = (-sin * dx + cos * dy) / unit
    return u, v, unit


def _mask_boxes(config: SyntheticConfig, identity: Identity):
    """The salient boxes (cu, cv, half_u, half_v) in face units: mouth, left and right brow.

    Each covers its feature over the whole range of labels in [-1, 1].
    """
    k, m = config.expression_strength, _MASK_MARGIN
    mouth_hu = _MOUTH_HALF_W + _MOUTH_WIDEN * k + _LIP + m
    mouth_hv = 0.5 * _MOUTH_CURVE * k + 2 * _MOUTH_OPEN * k + _LIP + m
    e = identity.eye_spacing
    brow_hu = _BROW_HALF_LEN + _BROW_R + m
    brow_hv = _BROW_RAISE * k + max(_BROW_TILT_IN, _BROW_TILT_OUT) * k + _BROW_R + m
    return [(0.0, _MOUTH_Y, mouth_hu, mouth_hv), (-e, _BROW_Y, brow_hu, brow_hv),
            (e, _BROW_Y, brow_hu, brow_hv)]


def _person_layers(u, v, unit, identity: Identity):
    """Coverages (n, S, S) of the shoulders, the hair cap and the face ellipse, and the
    signed distance to the face ellipse (face units)."""
    fw = identity.face_width
    shoulders = _coverage(_ellipse_sd(u, v, 0.0, 2.05, 1.5, 0.95) * unit)
    hair_cap = _coverage(_ellipse_sd(u, v, 0.0, -0.12, fw * 1.12, 1.0) * unit) * np.clip(
        0.5 - (v + 0.25) * unit, 0, 1)
    face_sd = _ellipse_sd(u, v, 0.0, 0.0, fw, 1.0)
    return shoulders, hair_cap, _coverage(face_sd * unit), face_sd


def _visible_decoy(decoy: np.ndarray, shoulders, hair_cap, face) -> np.ndarray:
    """Coverage (n, S, S) of the decoy disc (S, S) left visible by the person in front."""
    return decoy * (1 - shoulders) * (1 - hair_cap) * (1 - face)


def _mask_chunk(config: SyntheticConfig, processes: Processes, sl: slice,
                coords=None) -> np.ndarray:
    u, v, unit = coords if coords is not None else _face_coords(config, processes, sl)
    sd = np.full(u.shape, np.inf, dtype=np.float32)
    for cu, cv, hu, hv in _mask_boxes(config, processes.identity):
        sd = np.minimum(sd, _box_sd(u, v, cu, cv, hu, hv))
    return sd * unit < 1.0  # one pixel of dilation beyond the antialiased edge


def _decoy_coverage(config: SyntheticConfig, processes: Processes) -> np.ndarray:
    """(S, S) coverage of the decoy disc, fixed in the frame."""
    size = config.crop_size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    x0, y0 = processes.decoy_center
    return _coverage(np.hypot(xx - x0, yy - y0) - config.decoy_size * size)


def salient_mask(config: SyntheticConfig, processes: Processes) -> np.ndarray:
    """Ground-truth salient mask (N, S, S) bool: mouth and brow regions, minus the decoy.

    Independent of the labels (it covers each feature's whole range of motion), so it
    leaks nothing about them; it follows head translation, scale and roll.
    """
    n = config.steps_per_recording
    decoy = _decoy_coverage(config, processes) if config.decoy_strength > 0 else None
    out = np.empty((n, config.crop_size, config.crop_size), dtype=bool)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        coords = _face_coords(config, processes, sl)
        out[sl] = _mask_chunk(config, processes, sl, coords)
        if decoy is not None:
            layers = _person_layers(*coords, processes.identity)[:3]
            out[sl] &= ~(_visible_decoy(decoy, *layers) > 0)
    return out


def _lerp(img: np.ndarray, color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite ``color`` (3,) or (n, 1, 1, 3) over img (n, S, S, 3) with coverage (n, S, S).

    In place, and only inside the bounding box of the non-zero coverage (most features
    are small), which is what keeps rendering fast.
    """
    covered = alpha > 0
    rows = np.flatnonzero(covered.any(axis=(0, 2)))
    if rows.size == 0:
        return img
    cols = np.flatnonzero(covered.any(axis=(0, 1)))
    box = (slice(None), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    sub = img[box]
    step = color - sub
    step *= alpha[box][..., None]
    sub += step
    return img


def _render_chunk(config: SyntheticConfig, p: Processes, sl: slice) -> np.ndarray:
    size = config.crop_size
    u, v, unit = _face_coords(config, p, sl)
    ident = p.identity
    k = config.expression_strength
    f32 = np.float32

    def per_frame(x):
        return np.asarray(x, dtype=f32)[:, None, None]

    def cov(sd):
        return _coverage(sd * unit)

    # Background: the periodic texture, translated.
    t_size = p.background_texture.shape[0]
    idx = np.arange(size)
    off = p.background_offset[sl]
    rows = (idx[None, :] + off[:, 1:2]) % t_size
    cols = (idx[None, :] + off[:, 0:1]) % t_size
    img = p.background_texture[rows[:, :, None], cols[:, None, :]]  # (n, S, S, 3)

    # Decoy disc, fixed in the frame, behind the person (a lamp or a screen in the room):
    # colour × intensity following its own label-like process.
    if config.decoy_strength > 0:
        level = 0.5 + 0.5 * config.decoy_strength * p.decoy[sl]
        color = np.clip(level, 0, 1)[:, None] * p.decoy_color[None, :]
        disc = _decoy_coverage(config, p)[None]
        img = _lerp(img, color[:, None, None, :].astype(f32), np.broadcast_to(disc, u.shape))

    # Shoulders, hair cap, face, fringe.
    shoulders, hair_cap, face, face_sd = _person_layers(u, v, unit, ident)
    img = _lerp(img, ident.shirt.astype(f32), shoulders)
    img = _lerp(img, ident.hair.astype(f32), hair_cap)
    img = _lerp(img, ident.skin.astype(f32), face)
    fringe_line = ident.hairline + 0.06 * np.cos(7.0 * u)
    img = _lerp(img, ident.hair.astype(f32), cov(np.maximum(face_sd, v - fringe_line)))

    # Eyes: whites (height shrinks with blinks), irises following the gaze.
    valence = per_frame(p.labels[sl, 0])
    arousal = per_frame(p.labels[sl, 1])
    openness = (1.0 - per_frame(p.blink[sl])) * (1.0 + 0.25 * config.eye_arousal * arousal)
    eye_h = _EYE_HALF_H * openness
    gaze_u, gaze_v = per_frame(p.gaze[sl, 0]), per_frame(p.gaze[sl, 1])
    white = np.array([0.97, 0.97, 0.95], dtype=f32)
    lid = (ident.skin * 0.85).astype(f32)
    for side in (-1.0, 1.0):
        cu = side * ident.eye_spacing
        socket = _ellipse_sd(u, v, cu, _EYE_Y, _EYE_HALF_W * 1.05, _EYE_HALF_H * 1.35)
        img = _lerp(img, lid, cov(socket))  # the socket, which is all a closed eye shows
        # The lids cut the eye white horizontally (a thin ellipse's distance is unreliable).
        eye_sd = np.maximum(_ellipse_sd(u, v, cu, _EYE_Y, _EYE_HALF_W, 1.25 * _EYE_HALF_H),
                            np.abs(v - _EYE_Y) - eye_h)
        eye = cov(eye_sd)
        img = _lerp(img, white, eye)
        iris = cov(_ellipse_sd(u, v, cu + gaze_u, _EYE_Y + gaze_v, _PUPIL_R, _PUPIL_R))
        img = _lerp(img, ident.iris.astype(f32), iris * eye)
        pupil = cov(_ellipse_sd(u, v, cu + gaze_u, _EYE_Y + gaze_v, 0.45 * _PUPIL_R,
                                0.45 * _PUPIL_R))
        img = _lerp(img, np.zeros(3, f32), pupil * eye)

    # Brows: raised by arousal, tilted by valence (inner ends down when negative).
    brow_color = (0.55 * ident.hair).astype(f32)
    brow_y = _BROW_Y - _BROW_RAISE * k * arousal
    inner_y = brow_y - _BROW_TILT_IN * k * valence
    outer_y = brow_y + _BROW_TILT_OUT * k * valence
    for side in (-1.0, 1.0):
        inner_u = side * (ident.eye_spacing - _BROW_HALF_LEN)
        outer_u = side * (ident.eye_spacing + _BROW_HALF_LEN)
        img = _lerp(img, brow_color,
                    cov(_segment_sd(u, v, inner_u, inner_y, outer_u, outer_y, _BROW_R)))

    # Nose: a faint shadow line.
    nose = cov(_segment_sd(u, v, 0.03, -0.02, 0.06, 0.24, 0.03))
    img = _lerp(img, (ident.skin * 0.7).astype(f32), 0.6 * nose)

    # Mouth: a lens between two lip curves; valence bends and widens it, arousal opens it.
    half_w = _MOUTH_HALF_W + _MOUTH_WIDEN * k * valence
    rel = np.clip(u / half_w, -1.0, 1.0) ** 2
    center = _MOUTH_Y - _MOUTH_CURVE * k * valence * (rel - 0.5)
    half_open = _MOUTH_OPEN * k * (1.0 + arousal) * (1.0 - rel)
    dist_v = np.abs(v - center)
    outside_u = np.abs(u) - half_w
    lips = cov(np.maximum(dist_v - half_open - _LIP * (1.0 - 0.4 * rel), outside_u))
    img = _lerp(img, ident.lips.astype(f32), lips)
    cavity = cov(np.maximum(dist_v - half_open, outside_u))
    img = _lerp(img, np.array([0.18, 0.04, 0.06], dtype=f32), cavity)

    # Flicker: global contrast around mid-grey, then brightness.
    img = 0.5 + per_frame(p.contrast[sl])[..., None] * (img - 0.5)
    img = img + per_frame(p.brightness[sl])[..., None]
    return img.astype(f32, copy=False)


def render_float(config: SyntheticConfig, processes: Processes) -> np.ndarray:
    """Frames (N, S, S, 3) float32 in [0, 1], sensor noise included, before quantisation."""
    n, size = config.steps_per_recording, config.crop_size
    out = np.empty((n, size, size, 3), dtype=np.float32)
    noise_rng = np.random.default_rng(processes.noise_seed)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        chunk = _render_chunk(config, processes, sl)
        if config.noise_std > 0:
            chunk += config.noise_std * noise_rng.standard_normal(chunk.shape, dtype=np.float32)
        out[sl] = chunk
    return np.clip(out, 0.0, 1.0, out=out)


def render(config: SyntheticConfig, processes: Processes) -> tuple[np.ndarray, np.ndarray]:
    """Frames (N, S, S, 3) uint8 RGB and the salient mask (N, S, S) bool."""
    frames = np.rint(render_float(config, processes) * 255.0).astype(np.uint8)
    return frames, salient_mask(config, processes)


# --------------------------------------------------------------------------- recordings


def step_times(config: SyntheticConfig) -> np.ndarray:
    """Times (N,) in seconds of a recording's steps: ``k / step_rate``."""
    return np.arange(config.steps_per_recording) / config.step_rate


def render_voice(config: SyntheticConfig, processes: Processes) -> np.ndarray:
    """The recording's voice (L,) float32 at 16 kHz, covering its N / step_rate seconds."""
    return synthesize_voice(processes.labels, step_times(config), processes.voice_seed,
                            noise=config.voice_noise, arousal_cue=config.voice_arousal_cue,
                            valence_cue=config.voice_valence_cue,
                            duration=config.steps_per_recording / config.step_rate)


def _make_recording(config: SyntheticConfig, name: str, partition: str,
                    seed: int | np.random.SeedSequence,
                    want_voice: bool = False) -> tuple[Recording, np.ndarray | None]:
    if partition not in PARTITIONS:
        raise AvstanError(f"partition must be one of {PARTITIONS}, got {partition!r}")
    processes = sample_processes(config, seed)
    frames, mask = render(config, processes)
    n = config.steps_per_recording
    times = step_times(config)
    voice, features = None, None
    if config.audio or want_voice:
        voice = render_voice(config, processes)
    if config.audio:
        features = egemaps_functionals(voice, VOICE_SAMPLE_RATE, times,
                                       config.audio_window_seconds,
                                       source=f"synthetic recording {name}")
    seed_text = seed if isinstance(seed, int) else f"entropy={seed.entropy}"
    rec = Recording(
        name=name, frames=frames, times=times, face_found=np.ones(n, dtype=bool),
        labels=processes.labels, step_rate=config.step_rate, partition=partition,
        corpus="synthetic", source=f"synthetic:{config.name}:seed={seed_text}",
        salient_mask=mask, audio_features=features,
    )
    rec.validate()
    return rec, voice


def generate_recording(config: SyntheticConfig, name: str, partition: str,
                       seed: int | np.random.SeedSequence) -> Recording:
    """One synthetic recording, deterministic in ``seed``: frames, labels, salient mask and,
    with ``config.audio``, the voice's eGeMAPS functionals (N, 88) as ``audio_features``."""
    return _make_recording(config, name, partition, seed)[0]


def corpus_plan(config: SyntheticConfig) -> list[tuple[str, str, int]]:
    """(name, partition, seed) of every recording of the corpus, in generation order."""
    counts = {"train": config.num_train, "devel": config.num_devel, "test": config.num_test}
    return [(f"{part}_{i:03d}", part, recording_seed(config, part, i))
            for part in PARTITIONS for i in range(counts[part])]


def generate_corpus(root: str | Path, config: SyntheticConfig | None = None,
                    progress: bool = True, wav_folder: str | Path | None = None,
                    ) -> RecordingStore:
    """Write the corpus into a recording store at ``root`` and return the store.

    Resumable: recordings already complete in the store are skipped. A store made with a
    different configuration is refused (mixing two corpora in one folder would silently
    give wrong results).

    ``wav_folder``: also write each recording's voice there as ``<name>.wav`` (16 kHz,
    16-bit mono); a wav missing for a recording already in the store is rendered again.
    """
    from tqdm.auto import tqdm

    config = config or SyntheticConfig()
    root = Path(root)
    settings = asdict(config)
    if (root / "manifest.json").exists():
        existing = RecordingStore.open(root)
        previous = existing.attrs.get("synthetic_config")
        if previous is not None and previous != settings:
            diff = sorted(k for k in set(previous) | set(settings)
                          if previous.get(k) != settings.get(k))
            raise AvstanError(f"{root}: holds a synthetic corpus made with a different "
                              f"configuration (differs in {', '.join(diff)}); use another "
                              "folder or delete this one")
    store = RecordingStore.create(root, corpus="synthetic", synthetic_config=settings)
    plan = corpus_plan(config)
    todo = [item for item in plan if not store.is_complete(item[0])]
    with tqdm(total=len(plan), initial=len(plan) - len(todo), disable=not progress,
              desc="synthetic corpus", unit="rec") as bar:
        for name, partition, seed in todo:
            recording, voice = _make_recording(config, name, partition, seed,
                                               want_voice=wav_folder is not None)
            if wav_folder is not None:
                write_wav(Path(wav_folder) / f"{name}.wav", voice, VOICE_SAMPLE_RATE)
            store.add(recording)
            bar.update(1)
    if wav_folder is not None:
        for name, _, seed in plan:
            path = Path(wav_folder) / f"{name}.wav"
            if not path.exists():
                write_wav(path, render_voice(config, sample_processes(config, seed)),
                          VOICE_SAMPLE_RATE)
    return store


# --------------------------------------------------------------------------- measurement


def signal_variance_fraction(config: SyntheticConfig,
                             seed: int | np.random.SeedSequence = 0) -> dict[str, float]:
    """How much of the pixel variance each factor accounts for, in one recording.

    The recording is rendered once as is and once per factor with that factor switched
    to neutral (everything else, including the sensor noise, identical); the fraction is
    ``var(real - counterfactual) / var(real)`` over all pixels, channels and frames.

    Returns a dict with
        ``signal``: labels set to 0 (neutral face) — the emotion's share;
        ``decoy``: decoy process set to 0 (constant mid intensity);
        ``head_motion``, ``flicker``, ``background``, ``eyes`` (blinks and gaze):
            the other distractors, each switched off;
        ``signal_outside_mask``: the emotion's variance outside the salient mask, as a
            fraction of its total (0 by construction unless ``eye_arousal`` > 0).
    """
    p = sample_processes(config, seed)
    real = render_float(config, p)
    denom = float(real.var())
    n = config.steps_per_recording

    def fraction(q: Processes) -> tuple[float, np.ndarray]:
        diff = real - render_float(config, q)
        return float(diff.var()) / denom, diff

    signal, diff = fraction(replace(p, labels=np.zeros_like(p.labels)))
    mask = salient_mask(config, p)
    energy = (diff.astype(np.float64) ** 2).sum(-1)
    total = float(energy.sum())
    result = {"signal": signal}
    result["decoy"] = fraction(replace(p, decoy=np.zeros_like(p.decoy)))[0]
    still = replace(p, head_xy=np.zeros_like(p.head_xy), head_scale=np.ones(n),
                    head_roll=np.zeros(n))
    result["head_motion"] = fraction(still)[0]
    result["flicker"] = fraction(replace(p, brightness=np.zeros(n), contrast=np.ones(n)))[0]
    flat = np.broadcast_to(p.background_texture.mean((0, 1)), p.background_texture.shape)
    result["background"] = fraction(replace(p, background_texture=flat))[0]
    result["eyes"] = fraction(replace(p, blink=np.zeros(n), gaze=np.zeros_like(p.gaze)))[0]
    result["signal_outside_mask"] = float(energy[~mask].sum()) / total if total > 0 else 0.0
    return result
