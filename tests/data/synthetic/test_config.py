"""The synthetic corpus config: presets, reading it from a dict, one error per mistake."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from avstan.data.synthetic import PRESETS, SyntheticConfig
from avstan.errors import AvstanError


def test_presets_and_from_dict():
    assert {"default", "hard"} <= set(PRESETS)
    default, hard = PRESETS["default"], PRESETS["hard"]
    assert hard.face_scale < default.face_scale
    assert hard.expression_strength < default.expression_strength
    assert hard.head_motion > default.head_motion
    config = SyntheticConfig.from_dict({"preset": "hard", "noise_std": 0.1, "crop_size": 64})
    assert config.face_scale == hard.face_scale and config.noise_std == 0.1
    assert config.crop_size == 64 and isinstance(config.crop_size, int)
    assert SyntheticConfig.from_dict({}) == SyntheticConfig()
    quiet = SyntheticConfig.from_dict({"audio": False, "steps_per_recording": 12})
    assert quiet.audio is False and quiet.steps_per_recording == 12
    assert SyntheticConfig().audio and SyntheticConfig().audio_window_seconds == 4.0
    assert SyntheticConfig.preset("hard") == hard
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3  # type: ignore[misc]
    with pytest.raises(AvstanError, match="unknown synthetic preset 'nope'"):
        SyntheticConfig.preset("nope")


@pytest.mark.parametrize("data, word", [
    ({"crop_sise": 48}, "crop_sise"),
    ({"preset": "medium"}, "medium"),
    ({"noise_std": "lots"}, "noise_std"),
    ({"steps_per_recording": 2.5}, "steps_per_recording"),
    ({"face_scale": 5.0}, "face_scale"),
    ({"flicker": -0.1}, "flicker"),
    ({"audio": "yes"}, "audio"),
    ({"audio": 1}, "audio"),
    ({"voice_noise": -1.0}, "voice_noise"),
    ({"steps_per_recording": 12}, "audio_window_seconds"),
    ({"audio_window_seconds": 0.0}, "audio_window_seconds"),
])
def test_bad_config_raises_avstan_error_naming_the_key(data, word):
    with pytest.raises(AvstanError, match=word):
        SyntheticConfig.from_dict(data)


def test_from_dict_takes_numpy_scalars_integral_floats_and_float_strings():
    # What the synthetic config accepted before it shared avstan.typed_config, and the
    # float strings the experiment configs accepted (YAML reads 1e-4 as a string).
    config = SyntheticConfig.from_dict({"audio": np.bool_(False), "crop_size": np.int64(32),
                                        "steps_per_recording": 20.0,
                                        "noise_std": np.float32(0.25), "flicker": "1e-2"})
    assert config.audio is False
    assert config.crop_size == 32 and type(config.crop_size) is int
    assert config.steps_per_recording == 20 and type(config.steps_per_recording) is int
    assert config.noise_std == 0.25 and type(config.noise_std) is float
    assert config.flicker == 0.01


def test_an_unknown_key_lists_preset_among_the_known_keys():
    with pytest.raises(AvstanError, match=r"^synthetic config: unknown key crop_sise; known "
                                          r"keys here: preset, name, crop_size, "):
        SyntheticConfig.from_dict({"preset": "easy", "crop_sise": 48})
