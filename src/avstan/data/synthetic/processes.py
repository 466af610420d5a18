"""The random processes of one synthetic recording: its labels and every distractor.

:func:`sample_processes` draws every random process of a recording (labels and
distractors, each from its own child of the recording's ``SeedSequence``) into a
:class:`Processes`, and :mod:`~avstan.data.synthetic.rendering` turns them into frames
deterministically. Replacing one field of :class:`Processes` (``dataclasses.replace``)
and rendering again changes only that factor. :func:`recording_seed` derives each
recording's seed from the corpus seed. Where the decoy sits in the frame is drawn here
too (:func:`_place_decoy`: away from the mouth and brows, where it is well visible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from avstan.data.store import PARTITIONS
from avstan.data.synthetic.config import SyntheticConfig
from avstan.data.synthetic.rendering import _CHUNK, _face_coords, _mask_chunk, _person_layers
from avstan.errors import AvstanError

__all__ = ["Identity", "Processes", "recording_seed", "sample_processes"]


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
    voice_seed: int  # seeds the voice (speaker, phrasing, noise); see synthetic.voice


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
