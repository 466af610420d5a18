"""find_corpus / detect_layout: names, detection, and the errors a user can cause."""

import pytest

from avstan.data.corpora import LAYOUTS, detect_layout, find_corpus
from tests.data.corpora.conftest import error_message, write


def test_layout_names():
    assert set(LAYOUTS) == {"recola", "avec2017", "affwild2", "afewva", "ravdess", "cremad",
                            "mead", "generic"}


def test_unknown_layout_names_folder_and_known_layouts(tmp_path):
    message = error_message(find_corpus, tmp_path, "semaine")
    assert str(tmp_path) in message and "'semaine'" in message
    assert all(name in message for name in LAYOUTS)


def test_empty_folder_matches_no_layout(tmp_path):
    write(tmp_path / "notes.txt", "nothing here")
    message = error_message(find_corpus, tmp_path)
    assert str(tmp_path) in message and all(name in message for name in LAYOUTS)


def test_missing_folder(tmp_path):
    assert "no such folder" in error_message(find_corpus, tmp_path / "absent", "generic")


def test_two_corpora_in_one_folder_are_refused(tmp_path):
    write(tmp_path / "recordings_video" / "train_1.mp4")
    write(tmp_path / "video" / "Train_01.avi")
    message = error_message(detect_layout, tmp_path)
    assert "recola" in message and "avec2017" in message


@pytest.mark.parametrize("layout", ["recola", "avec2017", "affwild2", "afewva", "generic"])
def test_every_layout_refuses_an_empty_folder(tmp_path, layout):
    assert f"no {layout} recordings" in error_message(find_corpus, tmp_path, layout)
