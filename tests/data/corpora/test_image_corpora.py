"""Labelled face-image corpora: FER2013 (folders and CSV), AffectNet, labels.csv folders."""

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from avstan.data.corpora import images
from avstan.data.corpora.acted import CIRCUMPLEX, emotion_point
from avstan.data.corpora.images import (
    EXPRESSIONS,
    IMAGE_LAYOUTS,
    ImageSource,
    find_image_corpus,
    looks_like_image_corpus,
    partition_counts,
)
from avstan.errors import AvstanError
from tests.data.corpora.conftest import error_message, write

FER_FOLDERS = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
               "neutral": "neutral", "sad": "sadness", "surprise": "surprise"}


def grey(seed: int, size: tuple[int, int] = (48, 48)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def save_image(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def test_expressions_are_categories_of_the_one_table():
    assert set(EXPRESSIONS) <= set(CIRCUMPLEX)


def assert_category(source: ImageSource, category: str) -> None:
    assert EXPRESSIONS[source.expression] == category
    assert (source.valence, source.arousal) == emotion_point(category)


# --- FER2013 folders --------------------------------------------------------------------

@pytest.fixture
def fer_folders(tmp_path) -> Path:
    return make_fer_folders(tmp_path)


def make_fer_folders(tmp_path: Path) -> Path:
    for seed, (top, folder, name) in enumerate([
            ("train", "angry", "Training_7"), ("train", "happy", "Training_7"),
            ("test", "sad", "PublicTest_3"), ("test", "surprise", "PrivateTest_4")]):
        save_image(tmp_path / top / folder / f"{name}.png", grey(seed))
    save_image(tmp_path / "train" / "angry" / ".Training_9.png", grey(9))  # hidden
    write(tmp_path / "test" / "sad" / "notes.txt", "not an image")
    return tmp_path


def test_fer2013_folders_partition_by_prefix_and_label_by_folder(fer_folders):
    layout, sources = find_image_corpus(fer_folders)
    assert layout == "fer2013"
    # Kaggle's copy reuses a number in two emotion folders: the folder is in the name
    assert [(s.partition, s.name) for s in sources] == [
        ("devel", "test/sad/PublicTest_3"), ("test", "test/surprise/PrivateTest_4"),
        ("train", "train/angry/Training_7"), ("train", "train/happy/Training_7")]
    for source, category in zip(sources, ["sadness", "surprise", "anger", "happiness"],
                                strict=True):
        assert_category(source, category)
        assert source.pixels is None and source.path.is_file() and source.landmarks is None
    assert partition_counts(sources) == {"train": 2, "devel": 1, "test": 1}


def test_fer2013_every_emotion_folder_maps_to_the_table(tmp_path):
    for index, folder in enumerate(FER_FOLDERS):
        save_image(tmp_path / "train" / folder / f"Training_{index}.png", grey(index))
    sources = IMAGE_LAYOUTS["fer2013"](tmp_path)
    for source in sources:
        assert_category(source, FER_FOLDERS[source.path.parent.name])


def test_fer2013_image_without_prefix_is_skipped_with_a_warning(fer_folders):
    save_image(fer_folders / "train" / "fear" / "im12.png", grey(1))
    with pytest.warns(UserWarning, match="im12.png"):
        _, sources = find_image_corpus(fer_folders, "fer2013")
    assert len(sources) == 4


def test_fer2013_unknown_emotion_folder(fer_folders):
    save_image(fer_folders / "train" / "bored" / "Training_1.png", grey(1))
    message = error_message(find_image_corpus, fer_folders)
    assert "bored" in message and "happiness" in message


def test_read_grey_png_replicates_to_rgb(fer_folders):
    source = find_image_corpus(fer_folders)[1][0]
    image = source.read()
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    expected = grey(2)  # test/sad/PublicTest_3 was written with seed 2
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], expected)


def test_read_rgb_png(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = save_image(tmp_path / "a.png", pixels)
    source = ImageSource("a", "train", path, None, 0.0, 0.0, -1)
    np.testing.assert_array_equal(source.read(), pixels)


def test_read_16_bit_grey_keeps_the_high_byte(tmp_path):
    wide = np.random.default_rng(0).integers(0, 65536, (20, 20)).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(wide).save(path)
    image = ImageSource("deep", "train", path, None, 0.0, 0.0, -1).read()
    np.testing.assert_array_equal(image[:, :, 2], (wide >> 8).astype(np.uint8))


# --- FER2013 csv ------------------------------------------------------------------------

def fer_row(code: int, usage: str, pixels: np.ndarray) -> str:
    return f"{code},{' '.join(map(str, pixels.reshape(-1)))},{usage}"


@pytest.fixture
def fer_csv(tmp_path) -> Path:
    return make_fer_csv(tmp_path)


def make_fer_csv(tmp_path: Path) -> Path:
    rows = [fer_row(3, "Training", grey(0)), fer_row(0, "PublicTest", grey(1)),
            fer_row(6, "PrivateTest", grey(2))]
    write(tmp_path / "fer2013.csv", "emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    return tmp_path


def test_fer2013_csv_rows_names_partitions_pixels(fer_csv):
    layout, sources = find_image_corpus(fer_csv)
    assert layout == "fer2013"
    by_name = {s.name: s for s in sources}
    assert {name: s.partition for name, s in by_name.items()} == {
        "Training_0": "train", "PublicTest_1": "devel", "PrivateTest_2": "test"}
    assert_category(by_name["Training_0"], "happiness")
    assert_category(by_name["PublicTest_1"], "anger")
    assert_category(by_name["PrivateTest_2"], "neutral")
    source = by_name["PublicTest_1"]
    assert source.path is None and source.pixels.shape == (48, 48)
    assert source.pixels.dtype == np.uint8
    np.testing.assert_array_equal(source.pixels, grey(1))
    image = source.read()
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, np.repeat(grey(1)[:, :, None], 3, axis=2))


def test_fer2013_csv_every_code_maps_to_the_table(tmp_path):
    codes = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
    rows = [fer_row(code, "Training", grey(code)) for code in range(7)]
    write(tmp_path / "fer2013.csv", "emotion,pixels,Usage\n" + "\n".join(rows))
    sources = {s.name: s for s in find_image_corpus(tmp_path)[1]}
    for code, category in enumerate(codes):
        assert_category(sources[f"Training_{code}"], category)


@pytest.mark.parametrize("bad_row", [
    fer_row(3, "Training", grey(0))[:-20] + ",Training",  # pixel values cut off
    fer_row(3, "Training", grey(0)).replace(" ", " 17 ", 1),  # 2305 values
    fer_row(7, "Training", grey(0)),  # no emotion 7
    fer_row(3, "Bogus", grey(0)),
    fer_row(3, "Training", grey(0)).replace(" ", " x", 1),  # not a number
    "3,Training",  # a field missing
])
def test_fer2013_csv_malformed_row_names_file_and_line(tmp_path, bad_row):
    good = fer_row(0, "Training", grey(0))
    write(tmp_path / "fer2013.csv", f"emotion,pixels,Usage\n{good}\n{bad_row}\n{good}\n")
    with pytest.raises(AvstanError, match=r"fer2013\.csv, line 3"):
        find_image_corpus(tmp_path)


def test_fer2013_csv_value_out_of_range(tmp_path):
    pixels = grey(0).astype(np.int64)
    pixels[5, 5] = 256
    write(tmp_path / "fer2013.csv", "emotion,pixels,Usage\n" + fer_row(0, "Training", pixels))
    with pytest.raises(AvstanError, match=r"fer2013\.csv, line 2: pixel values must be 0\.\.255"):
        find_image_corpus(tmp_path)


# --- AffectNet ------------------------------------------------------------------------

def affectnet_image(root: Path, set_name: str, number: int, valence, arousal, expression,
                    landmarks=None) -> None:
    save_image(root / set_name / "images" / f"{number}.jpg", grey(number))
    folder = root / set_name / "annotations"
    folder.mkdir(parents=True, exist_ok=True)
    for kind, value in (("val", valence), ("aro", arousal), ("exp", expression)):
        np.save(folder / f"{number}_{kind}.npy", np.asarray(value))
    if landmarks is None:
        landmarks = np.arange(136, dtype=np.float64) + number
    np.save(folder / f"{number}_lnd.npy", landmarks)


@pytest.fixture
def affectnet(tmp_path) -> Path:
    return make_affectnet(tmp_path)


def make_affectnet(tmp_path: Path) -> Path:
    affectnet_image(tmp_path, "train_set", 20, 0.5, -0.25, 1)  # 20 % 20 == 0: devel
    affectnet_image(tmp_path, "train_set", 21, "-0.125", "0.75", "7",  # stored as strings
                    landmarks=np.asarray([f"{v:.2f}" for v in np.arange(136) / 4]))
    affectnet_image(tmp_path, "train_set", 22, -2, -2, 10)  # not annotated, no face
    affectnet_image(tmp_path, "val_set", 21, [1.0], [-1.0], [6.0])  # 1-element arrays
    return tmp_path


def test_affectnet_partitions_names_and_labels(affectnet):
    layout, sources = find_image_corpus(affectnet)
    assert layout == "affectnet"
    assert [(s.partition, s.name) for s in sources] == [
        ("devel", "train_set/20"), ("test", "val_set/21"), ("train", "train_set/21"),
        ("train", "train_set/22")]
    by_name = {s.name: s for s in sources}
    assert (by_name["train_set/20"].valence, by_name["train_set/20"].arousal) == (0.5, -0.25)
    assert EXPRESSIONS[by_name["train_set/20"].expression] == "happiness"
    assert (by_name["train_set/21"].valence, by_name["train_set/21"].arousal) == (-0.125, 0.75)
    assert EXPRESSIONS[by_name["train_set/21"].expression] == "contempt"
    unlabelled = by_name["train_set/22"]
    assert math.isnan(unlabelled.valence) and math.isnan(unlabelled.arousal)
    assert unlabelled.expression == -1
    assert EXPRESSIONS[by_name["val_set/21"].expression] == "anger"
    assert (by_name["val_set/21"].valence, by_name["val_set/21"].arousal) == (1.0, -1.0)
    assert by_name["val_set/21"].path == affectnet / "val_set" / "images" / "21.jpg"


def test_affectnet_landmarks_are_68_xy_points(affectnet):
    by_name = {s.name: s for s in find_image_corpus(affectnet)[1]}
    points = by_name["train_set/20"].landmarks
    assert points.shape == (68, 2) and points.dtype == np.float32
    assert tuple(points[0]) == (20.0, 21.0) and tuple(points[67]) == (154.0, 155.0)
    from_strings = by_name["train_set/21"].landmarks
    np.testing.assert_allclose(from_strings[1], [0.5, 0.75])


def test_affectnet_expression_codes_follow_expressions(tmp_path):
    names = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"]
    for code in range(11):
        affectnet_image(tmp_path, "val_set", code, 0.0, 0.0, code)
    by_number = {int(s.name.split("/")[1]): s for s in find_image_corpus(tmp_path)[1]}
    for code, name in enumerate(names):
        assert by_number[code].expression == images.expression_index(name, "test")
    assert [by_number[code].expression for code in (8, 9, 10)] == [-1, -1, -1]


def test_affectnet_without_landmark_files(tmp_path):
    affectnet_image(tmp_path, "val_set", 1, 0.0, 0.0, 0)
    (tmp_path / "val_set" / "annotations" / "1_lnd.npy").unlink()
    assert find_image_corpus(tmp_path)[1][0].landmarks is None


def test_affectnet_missing_annotation_file(affectnet):
    (affectnet / "train_set" / "annotations" / "21_aro.npy").unlink()
    with pytest.raises(AvstanError, match=r"train_set/annotations/21_aro\.npy: missing"):
        find_image_corpus(affectnet)


@pytest.mark.parametrize("kind, value, match", [
    ("val", 1.7, r"21_val\.npy: value 1\.7 is outside \[-1, 1\]"),
    ("aro", "nan", r"21_aro\.npy: value nan is outside"),
    ("exp", 12, r"21_exp\.npy: unknown expression code 12"),
    ("exp", 1.5, r"21_exp\.npy: unknown expression code 1\.5"),
    ("val", "high", r"21_val\.npy: 'high' is not a number"),
    ("val", [0.1, 0.2], r"21_val\.npy: holds 2 values"),
    ("lnd", np.zeros(134), r"21_lnd\.npy: 134 landmark values, expected 136"),
])
def test_affectnet_bad_annotation_names_the_file(affectnet, kind, value, match):
    np.save(affectnet / "train_set" / "annotations" / f"21_{kind}.npy", np.asarray(value))
    with pytest.raises(AvstanError, match=match):
        find_image_corpus(affectnet)


def test_affectnet_unreadable_npy(affectnet):
    write(affectnet / "train_set" / "annotations" / "21_val.npy", b"garbage")
    with pytest.raises(AvstanError, match=r"21_val\.npy: cannot read the numpy file"):
        find_image_corpus(affectnet)


def test_affectnet_split_file_overrides(affectnet):
    write(affectnet / "split.csv", "image,partition\ntrain_set/20,train\n"
          "train_set/images/21.jpg,validation\ntrain_set/22,test\nval_set/21,train\n")
    partitions = {s.name: s.partition for s in find_image_corpus(affectnet)[1]}
    assert partitions == {"train_set/20": "train", "train_set/21": "devel",
                          "train_set/22": "test", "val_set/21": "train"}
    affectnet_image(affectnet, "train_set", 7, 0.0, 0.0, 0)
    (affectnet / "train_set" / "images" / "7.jpg").rename(
        affectnet / "train_set" / "images" / "extra.jpg")
    for kind in ("val", "aro", "exp", "lnd"):  # an unnumbered image needs split.csv
        (affectnet / "train_set" / "annotations" / f"7_{kind}.npy").rename(
            affectnet / "train_set" / "annotations" / f"extra_{kind}.npy")
    with pytest.warns(UserWarning, match="val_set/99"):
        write(affectnet / "split.csv", "image,partition\ntrain_set/20,train\n"
              "train_set/21,train\ntrain_set/22,train\nval_set/21,test\n"
              "train_set/extra,devel\nval_set/99,test\n")
        partitions = {s.name: s.partition for s in find_image_corpus(affectnet)[1]}
    assert partitions["train_set/extra"] == "devel"
    (affectnet / "split.csv").unlink()
    assert "extra.jpg: AffectNet images are numbered" in error_message(find_image_corpus,
                                                                       affectnet)
    write(affectnet / "split.csv", "image,partition\ntrain_set/20,train\n")
    message = error_message(find_image_corpus, affectnet)
    assert "split.csv" in message and "'train_set/21'" in message


# --- labels.csv folders ---------------------------------------------------------------

@pytest.fixture
def labelled(tmp_path) -> Path:
    save_image(tmp_path / "faces" / "a.png", grey(1))
    save_image(tmp_path / "faces" / "b.jpg", grey(2))
    save_image(tmp_path / "c.png", grey(3))
    return tmp_path


def test_images_expression_only_labels_from_the_table(labelled):
    write(labelled / "labels.csv", "image,expression\nfaces/a.png,Angry\n"
          "faces/b.jpg,happiness\nc.png,surprised\n")
    layout, sources = find_image_corpus(labelled)
    assert layout == "images"
    assert [(s.partition, s.name) for s in sources] == [
        ("train", "c"), ("train", "faces/a"), ("train", "faces/b")]
    for source, category in zip(sources, ["surprise", "anger", "happiness"], strict=True):
        assert_category(source, category)
    assert sources[1].path == labelled / "faces" / "a.png"


def test_images_every_name_and_synonym(labelled):
    synonyms = {"angry": "anger", "happy": "happiness", "sad": "sadness",
                "surprised": "surprise", "fearful": "fear", "disgusted": "disgust"}
    for text, category in list(synonyms.items()) + [(name, name) for name in EXPRESSIONS]:
        for form in (text, text.capitalize(), text.upper()):
            assert EXPRESSIONS[images.expression_index(form, "x")] == category


def test_images_valence_arousal_expression_and_partition(labelled):
    write(labelled / "labels.csv", "image;valence;arousal;expression;partition\n"
          "faces/a.png;0.5;;sad;dev\nfaces/b.jpg;-1;1;;test\nc.png;0.25;0;fear;train\n")
    by_name = {s.name: s for s in find_image_corpus(labelled)[1]}
    a = by_name["faces/a"]
    assert a.partition == "devel" and a.valence == 0.5 and math.isnan(a.arousal)
    assert EXPRESSIONS[a.expression] == "sadness"  # kept, but the columns give the values
    b = by_name["faces/b"]
    assert (b.partition, b.valence, b.arousal, b.expression) == ("test", -1.0, 1.0, -1)
    assert by_name["c"].partition == "train"


def test_images_read(labelled):
    write(labelled / "labels.csv", "image,valence,arousal\nc.png,0,0\n")
    np.testing.assert_array_equal(find_image_corpus(labelled)[1][0].read()[:, :, 1], grey(3))


@pytest.mark.parametrize("rows, match", [
    ("image,expression\nfaces/a.png,bored\n",
     r"labels\.csv, line 2: unknown expression 'bored'; use one of neutral, happiness"),
    ("image,expression\nfaces/a.png,happy\n\nfaces/missing.png,sad\n",
     r"labels\.csv, line 4: no image file .*faces/missing\.png"),
    ("image,valence,arousal\nfaces/a.png,0.5,lots\n", r"labels\.csv, line 2: 'lots' is not"),
    ("image,valence,arousal\nfaces/a.png,1.5,0\n",
     r"labels\.csv, line 2: valence 1\.5 is outside \[-1, 1\]"),
    ("image,expression\nfaces/a.png,happy\nfaces//a.png,sad\n",
     r"labels\.csv, line 3: image 'faces/a\.png' is already listed on line 2"),
    ("image,expression,partition\nfaces/a.png,happy,holdout\n",
     r"labels\.csv, line 2: unknown partition 'holdout'"),
    ("image,expression\n../a.png,happy\n", r"labels\.csv, line 2: image '\.\./a\.png'"),
    ("image,valence\nfaces/a.png,0.5\n", r"labels\.csv, line 1: .*add the arousal column"),
    ("image,partition\nfaces/a.png,train\n", r"labels\.csv, line 1: no label column"),
])
def test_images_bad_rows_name_the_file_and_line(labelled, rows, match):
    write(labelled / "labels.csv", rows)
    with pytest.raises(AvstanError, match=match):
        find_image_corpus(labelled, "images")


# --- read() refuses bad image files ----------------------------------------------------

def source_for(path: Path) -> ImageSource:
    return ImageSource(path.stem, "train", path, None, 0.0, 0.0, -1)


def test_read_refuses_a_truncated_image(tmp_path):
    path = save_image(tmp_path / "cut.png", grey(0, (64, 64)))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(AvstanError, match=r"cut\.png: cannot read the image .*re-extract"):
        source_for(path).read()
    jpeg = tmp_path / "cut.jpg"
    Image.fromarray(grey(0, (64, 64))).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[:jpeg.stat().st_size // 2])
    with pytest.raises(AvstanError, match=r"cut\.jpg: cannot read the image"):
        source_for(jpeg).read()


def test_read_refuses_a_non_image_and_an_empty_file(tmp_path):
    with pytest.raises(AvstanError, match=r"fake\.png: not an image PIL can read"):
        source_for(write(tmp_path / "fake.png", "hello, not a picture")).read()
    with pytest.raises(AvstanError, match=r"empty\.png: an empty file"):
        source_for(write(tmp_path / "empty.png", b"")).read()


def test_read_refuses_a_tiny_image(tmp_path):
    path = save_image(tmp_path / "tiny.png", grey(0, (10, 12)))
    message = error_message(source_for(path).read)
    assert "tiny.png" in message and "12×10" in message and "minimum of 16 px" in message
    inline = ImageSource("Training_0", "train", None, grey(0, (10, 10)), 0.0, 0.0, -1)
    with pytest.raises(AvstanError, match="Training_0.*minimum of 16 px"):
        inline.read()


# --- detection and the corpus as a whole ----------------------------------------------

def test_detection_of_each_layout(tmp_path):
    assert looks_like_image_corpus(make_fer_folders(tmp_path / "folders")) == "fer2013"
    assert looks_like_image_corpus(make_fer_csv(tmp_path / "csv")) == "fer2013"
    assert looks_like_image_corpus(make_affectnet(tmp_path / "affectnet")) == "affectnet"
    other = tmp_path / "other"
    other.mkdir()
    assert looks_like_image_corpus(other) is None
    write(other / "labels.csv", "file,valence\n")  # no image column
    assert looks_like_image_corpus(other) is None
    write(other / "labels.csv", "image,valence,arousal\n")
    assert looks_like_image_corpus(other) == "images"
    message = error_message(find_image_corpus, other)  # header only: no images
    assert "no labelled images found" in message and "labels.csv" in message


def test_several_layouts_or_none(affectnet, tmp_path_factory):
    write(affectnet / "labels.csv", "image,expression\n")
    assert "several" in error_message(looks_like_image_corpus, affectnet)
    empty = tmp_path_factory.mktemp("empty")
    assert "none of the image corpus layouts" in error_message(find_image_corpus, empty)
    assert "unknown image corpus layout" in error_message(find_image_corpus, empty, "jaffe")
    assert "no fer2013 images found" in error_message(find_image_corpus, empty, "fer2013")
    assert "no AffectNet images found" in error_message(find_image_corpus, empty, "affectnet")


def test_sources_pickle(tmp_path):
    import pickle

    for root in (make_fer_csv(tmp_path / "csv"), make_affectnet(tmp_path / "affectnet")):
        sources = find_image_corpus(root)[1]
        again = pickle.loads(pickle.dumps(sources))
        np.testing.assert_array_equal(again[0].read(), sources[0].read())
