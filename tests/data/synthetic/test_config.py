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


HOSTILE = (float("nan"), float("inf"), float("-inf"), -1, 0, 1e30, "abc")


@pytest.mark.parametrize("key", [f.name for f in dataclasses.fields(SyntheticConfig)])
def test_every_key_refuses_a_hostile_value_in_one_line_or_takes_a_declared_one(key):
    """Issue 32 §3: the synthetic config is swept like the experiment config."""
    import typing

    hint = typing.get_type_hints(SyntheticConfig, include_extras=True)[key]
    rules = typing.get_args(hint)[1:] if typing.get_origin(hint) is typing.Annotated else ()
    for value in HOSTILE:
        try:
            config = SyntheticConfig.from_dict({"audio": False, key: value})
        except AvstanError as error:
            message = str(error)
            assert "\n" not in message and message.startswith("synthetic config: ")
            assert key in message, (key, value, message)
            continue
        taken = getattr(config, key)
        assert not isinstance(taken, float) or np.isfinite(taken), (key, value)
        assert all(rule.allows(taken) for rule in rules), (key, value, taken)


def test_a_recording_too_large_to_make_in_memory_is_one_line():
    with pytest.raises(AvstanError, match=r"^synthetic config: a recording of 1000000 steps "
                                          r"at 1024 px is 3145.7 GB of frames"):
        SyntheticConfig.from_dict({"audio": False, "steps_per_recording": 10**6,
                                   "crop_size": 1024})
    # upper bounds declared: 1e30 steps is refused by its declaration first
    with pytest.raises(AvstanError, match=r"steps_per_recording 1e\+30|steps_per_recording "
                                          r"1000000000000000019884624838656"):
        SyntheticConfig.from_dict({"audio": False, "steps_per_recording": 1e30})
