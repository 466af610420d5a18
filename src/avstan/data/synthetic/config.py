"""The configuration of a synthetic corpus: :class:`SyntheticConfig` and :data:`PRESETS`.

:class:`SyntheticConfig` holds every field that defines a corpus (sizes and counts, the
emotion, each distractor, the audio), checks them, and reads them from a plain dict (a
YAML section) through :mod:`avstan.typed_config`; :data:`PRESETS` holds the named
configurations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Annotated, Any

from avstan.errors import AvstanError
from avstan.typed_config import Range, check_declared, convert_fields

__all__ = ["PRESETS", "SyntheticConfig"]

# The frames of one recording are made in memory before they are written: at most this.
MAX_RECORDING_BYTES = 4e9


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that defines a synthetic corpus; :data:`PRESETS` holds named ones.

    Each field declares its allowed values with its type (``typed_config``), checked when
    the config is read from a dict and when it is built in code.

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

    Audio (the voice of :mod:`avstan.data.synthetic.voice`):
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
    crop_size: Annotated[int, Range(ge=16, le=1024)] = 48
    step_rate: Annotated[float, Range(gt=0, le=1000)] = 4.0
    steps_per_recording: Annotated[int, Range(ge=2, le=10_000_000)] = 240
    num_train: Annotated[int, Range(ge=0, le=100_000)] = 8
    num_devel: Annotated[int, Range(ge=0, le=100_000)] = 3
    num_test: Annotated[int, Range(ge=0, le=100_000)] = 3
    seed: Annotated[int, Range(ge=0, le=2**32 - 1)] = 0
    label_smoothness_seconds: Annotated[float, Range(ge=0, le=3600)] = 8.0
    expression_strength: Annotated[float, Range(ge=0, le=10)] = 1.0
    eye_arousal: Annotated[float, Range(ge=0, le=10)] = 0.0
    face_scale: Annotated[float, Range(ge=0.2, le=1.3)] = 1.0
    head_motion: Annotated[float, Range(ge=0, le=1)] = 0.03
    scale_jitter: Annotated[float, Range(ge=0, le=1)] = 0.03
    head_roll_degrees: Annotated[float, Range(ge=0, le=180)] = 3.0
    motion_smoothness_seconds: Annotated[float, Range(ge=0, le=3600)] = 1.5
    flicker: Annotated[float, Range(ge=0, le=10)] = 0.12
    flicker_smoothness_seconds: Annotated[float, Range(ge=0, le=3600)] = 1.0
    background_strength: Annotated[float, Range(ge=0, le=10)] = 0.4
    background_speed: Annotated[float, Range(ge=0, le=1000)] = 0.5  # pixels per step
    decoy_strength: Annotated[float, Range(ge=0, le=10)] = 1.0
    decoy_size: Annotated[float, Range(gt=0, le=0.3)] = 0.14
    noise_std: Annotated[float, Range(ge=0, le=10)] = 0.03
    blink_rate: Annotated[float, Range(ge=0, le=100)] = 0.3  # per second
    gaze_rate: Annotated[float, Range(ge=0, le=100)] = 0.5  # per second
    audio: bool = True
    audio_window_seconds: Annotated[float, Range(ge=0.1, le=3600)] = 4.0
    voice_noise: Annotated[float, Range(ge=0, le=100)] = 1.0
    voice_arousal_cue: Annotated[float, Range(ge=0, le=100)] = 1.0
    voice_valence_cue: Annotated[float, Range(ge=0, le=100)] = 1.0

    def __post_init__(self) -> None:
        # each field against its declaration (type and range), as a file or --set is read
        check_declared(self, "synthetic config")
        frame_bytes = self.steps_per_recording * self.crop_size ** 2 * 3
        if frame_bytes > MAX_RECORDING_BYTES:
            raise AvstanError(
                f"synthetic config: a recording of {self.steps_per_recording} steps at "
                f"{self.crop_size} px is {frame_bytes / 1e9:.1f} GB of frames, more than "
                f"{MAX_RECORDING_BYTES / 1e9:g} GB held in memory while it is made; set "
                "fewer steps_per_recording or a smaller crop_size")
        if self.audio and (self.steps_per_recording / self.step_rate
                           < self.audio_window_seconds + 0.05):
            raise AvstanError(
                f"synthetic config: with audio, a recording ({self.steps_per_recording} "
                f"steps = {self.steps_per_recording / self.step_rate:g} s) must last at "
                f"least audio_window_seconds + 0.05 s ({self.audio_window_seconds + 0.05:g} "
                "s); set more steps, a shorter window or audio: false")

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
        raises AvstanError naming it (:mod:`avstan.typed_config` says what each type
        accepts).
        """
        data = dict(data or {})
        base: dict[str, Any] = {}
        if "preset" in data:
            preset = data.pop("preset")
            if preset not in PRESETS:
                raise AvstanError(f"synthetic config: unknown preset {preset!r}; choose one "
                                  f"of {', '.join(sorted(PRESETS))}")
            base = asdict(PRESETS[preset])
        base.update(convert_fields(cls, data, "synthetic config", extra_keys=("preset",)))
        return cls(**base)


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


def preset_config(name: str, **changes: Any) -> SyntheticConfig:
    """The preset ``name`` with ``changes`` (fields of :class:`SyntheticConfig`; a None
    value keeps the preset's); an unknown preset is one AvstanError naming the presets."""
    if name not in PRESETS:
        raise AvstanError(f"unknown synthetic preset {name!r}; use one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in changes.items() if v is not None})
