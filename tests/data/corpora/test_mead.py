"""MEAD: <actor>_<view>_<emotion>_level<k>_<n>.mp4 (or MEAD's folders), levels, speaker split."""

from pathlib import Path

import pytest

from avstan.data.corpora import detect_layout, find_corpus, mead
from avstan.data.corpora.acted import CIRCUMPLEX, emotion_point
from tests.data.corpora.conftest import error_message, write


def mead_corpus(root: Path, actors=("M030", "M033", "W036")) -> Path:
    for actor in actors:
        write(root / f"{actor}_front_angry_level3_001.mp4")
        write(root / f"{actor}_front_neutral_level1_001.mp4")
        write(root / "more" / f"{actor}_left_30_happy_level1_002.mp4")
    return root


def test_names_levels_views_and_the_default_split(tmp_path):
    mead_corpus(tmp_path)
    assert detect_layout(tmp_path) == "mead"
    layout, recordings = find_corpus(tmp_path)
    assert layout == "mead" and len(recordings) == 9
    by_name = {r.name: r for r in recordings}
    assert by_name["M030_front_angry_level3_001"].extra["point"] == \
        pytest.approx(emotion_point("anger", 1.25))
    assert by_name["M030_left_30_happy_level1_002"].extra["point"] == \
        pytest.approx(emotion_point("happiness", 0.75))
    assert by_name["M030_front_neutral_level1_001"].extra["point"] == pytest.approx((0, 0))
    assert {r.extra["speaker"]: r.partition for r in recordings} == \
        {"M030": "train", "M033": "devel", "W036": "test"}
    assert all(category in CIRCUMPLEX for category in mead.EMOTIONS.values())


def test_meads_own_folder_form(tmp_path):
    for actor in ("M030", "M033", "W036"):
        write(tmp_path / actor / "video" / "front" / "sad" / "level_2" / "001.mp4")
    _, recordings = find_corpus(tmp_path, "mead")
    assert sorted(r.name for r in recordings) == [f"{a}_front_sad_level2_001"
                                                   for a in ("M030", "M033", "W036")]
    assert recordings[0].extra["point"] == pytest.approx(emotion_point("sadness", 1.0))


def test_a_subset_needs_split_csv_and_follows_it(tmp_path):
    mead_corpus(tmp_path, actors=("M030", "W009", "W011"))
    message = error_message(lambda: find_corpus(tmp_path, "mead"))
    assert "devel partition without a speaker" in message and "split.csv" in message
    (tmp_path / "split.csv").write_text("speaker,partition\nM030,test\nW009,train\n"
                                        "W011,devel\n")
    _, recordings = find_corpus(tmp_path, "mead")
    assert {r.extra["speaker"]: r.partition for r in recordings} == \
        {"M030": "test", "W009": "train", "W011": "devel"}
    # a split that chooses no devel (one fold of leave-one-actor-out) is a warning that
    # says how to train without one; the default rule leaving one empty stays an error
    (tmp_path / "split.csv").write_text("speaker,partition\nM030,test\nW009,train\n"
                                        "W011,train\n")
    with pytest.warns(UserWarning, match="split.csv leaves the devel partition without a "
                                         "speaker; train it with --set training.keep="
                                         "last_epoch"):
        _, recordings = find_corpus(tmp_path, "mead")
    assert {r.extra["speaker"]: r.partition for r in recordings} == \
        {"M030": "test", "W009": "train", "W011": "train"}


def test_an_unknown_emotion_is_an_error_and_other_names_are_skipped(tmp_path):
    mead_corpus(tmp_path)
    write(tmp_path / "M030_front_bored_level2_001.mp4")
    message = error_message(lambda: find_corpus(tmp_path, "mead"))
    assert "M030_front_bored_level2_001.mp4" in message and "unknown emotion" in message
    (tmp_path / "M030_front_bored_level2_001.mp4").unlink()
    write(tmp_path / "holiday.mp4")
    with pytest.warns(UserWarning, match="holiday.mp4"):
        assert len(find_corpus(tmp_path, "mead")[1]) == 9
