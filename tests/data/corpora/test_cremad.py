"""CREMA-D: AudioWAV/AAAA_SSS_EEE_LL.wav and VideoFlash/*.flv, levels, speaker split."""

from pathlib import Path

import pytest

from avstan.data.corpora import cremad, find_corpus
from avstan.data.corpora.acted import CIRCUMPLEX
from tests.data.corpora.conftest import error_message, write


def cremad_corpus(root: Path, actors=(1001, 1074, 1083)) -> Path:
    for actor in actors:
        write(root / "AudioWAV" / f"{actor}_IEO_ANG_HI.wav")
        write(root / "VideoFlash" / f"{actor}_IEO_ANG_HI.flv")
        write(root / "AudioWAV" / f"{actor}_DFA_SAD_XX.wav")
        write(root / "VideoFlash" / f"{actor}_TIE_HAP_LO.flv")
    return root


def test_names_levels_audio_beside_video_and_default_split(tmp_path):
    cremad_corpus(tmp_path)
    layout, recordings = find_corpus(tmp_path)
    assert layout == "cremad" and len(recordings) == 9
    by_name = {r.name: r for r in recordings}
    angry = by_name["1001_IEO_ANG_HI"]
    assert angry.media == tmp_path / "VideoFlash" / "1001_IEO_ANG_HI.flv"
    assert angry.extra["audio"] == tmp_path / "AudioWAV" / "1001_IEO_ANG_HI.wav"
    assert angry.extra["point"] == pytest.approx((-0.75, 1.0))
    assert by_name["1001_DFA_SAD_XX"].extra["point"] == pytest.approx((-0.7, -0.5))
    assert by_name["1001_TIE_HAP_LO"].extra["point"] == pytest.approx((0.6, 0.375))
    assert by_name["1001_DFA_SAD_XX"].media.suffix == ".wav"
    assert {r.extra["speaker"]: r.partition for r in recordings} == \
        {"1001": "train", "1074": "devel", "1083": "test"}
    assert all(category in CIRCUMPLEX for category in cremad.EMOTIONS.values())


def test_names_off_the_scheme_are_skipped_with_one_warning(tmp_path):
    cremad_corpus(tmp_path)
    write(tmp_path / "AudioWAV" / "1001_IEO_ANG.wav")
    write(tmp_path / "AudioWAV" / "readme.wav")
    with pytest.warns(UserWarning) as caught:
        assert len(cremad.find_recordings(tmp_path)) == 9
    assert len(caught) == 1 and "1001_IEO_ANG.wav" in str(caught[0].message)


def test_unknown_codes_are_errors_naming_the_file(tmp_path):
    cremad_corpus(tmp_path)
    write(tmp_path / "AudioWAV" / "1001_IEO_CAL_XX.wav")
    message = error_message(cremad.find_recordings, tmp_path)
    assert "1001_IEO_CAL_XX.wav" in message and "unknown emotion code CAL" in message
    (tmp_path / "AudioWAV" / "1001_IEO_CAL_XX.wav").unlink()
    write(tmp_path / "AudioWAV" / "1001_IEO_ANG_ZZ.wav")
    assert "unknown level code ZZ" in error_message(cremad.find_recordings, tmp_path)


def test_empty_media_folder_warns_and_empty_partition_is_refused(tmp_path):
    cremad_corpus(tmp_path, actors=(1001, 1074, 1083))
    (tmp_path / "AudioMP3").mkdir()
    with pytest.warns(UserWarning, match="empty media folder.*AudioMP3"):
        cremad.find_recordings(tmp_path)
    other = cremad_corpus(tmp_path / "few", actors=(1001, 1002))
    message = error_message(cremad.find_recordings, other)
    assert "leaves the devel partition without a speaker" in message
