"""Labelled face-IMAGE corpora: find the images of a corpus and their labels.

This lists images and labels only; it detects no face and knows no model or store.
``find_image_corpus(root)`` returns ``(layout, sources)``, each an :class:`ImageSource`
with its partition, its file (or inline pixels), valence and arousal in [-1, 1] (NaN: not
annotated), an expression index into :data:`EXPRESSIONS` (-1: none) and, where the corpus
ships them, 68 landmarks. Sources are sorted by ``(partition, name)`` as strings (devel,
test, train). Three layouts:

``fer2013`` (Goodfellow et al. 2013), either form::

    train/<emotion>/Training_<n>.png               folder per expression (Kaggle's image copy)
    test/<emotion>/PublicTest_<n>.png, PrivateTest_<n>.png
    fer2013.csv                                    or the original CSV: emotion,pixels,Usage

  Emotion folders are angry, disgust, fear, happy, neutral, sad, surprise (any name or
  synonym of :data:`EXPRESSIONS` works). The partition comes from the file-name prefix:
  ``Training_`` train, ``PublicTest_`` devel, ``PrivateTest_`` test; an image without one
  of these prefixes is skipped (one warning names them all). The name is the path below
  the root without suffix (``train/happy/Training_10019449``): Kaggle's copy reuses a few
  numbers in two emotion folders, so the number alone is not unique. In ``fer2013.csv``
  (read instead of the folders when it exists) emotion 0..6 is angry, disgust, fear, happy,
  sad, surprise, neutral, pixels are 2304 values 0..255 (48×48 grey, kept inline), Usage
  Training/PublicTest/PrivateTest is train/devel/test; the name is ``<Usage>_<row>`` (row:
  0-based data row). Valence and arousal are the category's point in the circumplex table
  of :mod:`avstan.data.corpora.acted`.

``affectnet`` (Mollahosseini et al. 2017), as distributed::

    train_set/images/<n>.jpg                     the image
    train_set/annotations/<n>_val.npy, _aro.npy  valence, arousal in [-1, 1] (-2: none)
    train_set/annotations/<n>_exp.npy            0 neutral, 1 happy, 2 sad, 3 surprise,
                                                 4 fear, 5 disgust, 6 anger, 7 contempt,
                                                 8 none, 9 uncertain, 10 no face (→ -1)
    train_set/annotations/<n>_lnd.npy            68 landmarks as x1, y1, x2, y2, …
    val_set/…                                    alike
    split.csv                                    optional: image,partition

  Each .npy holds one value (a number or a numeric string; the landmarks 136). Valence
  and arousal are the annotators' own values (-2 → NaN, not the category's point). The
  landmark files are optional for a set as a whole: when its annotations folder has none,
  ``landmarks`` is None; when it has any, every image needs one. The name is
  ``<set>/<n>`` (``train_set/123``; the numbering restarts in val_set). Partitions:
  AffectNet's test set is not public and papers report on its validation set, so val_set
  is test; train_set is train except every image whose number n has n % 20 == 0, which is
  devel (a fixed 5 % held out for checkpointing). ``split.csv`` (header
  ``image,partition``; an image as its name ``train_set/123`` or its path
  ``train_set/images/123.jpg``) replaces this, and must list every image.

``images`` (any folder)::

    labels.csv        image,valence,arousal,expression,partition (any order, ; also works)
    some/dir/a.jpg    the images, at the paths named in the image column

  ``image`` is a path relative to the root; it needs ``valence`` and ``arousal``, or
  ``expression``, or all three; ``partition`` (train, devel, test and the aliases of
  :data:`~avstan.data.corpora.common.PARTITION_ALIASES`) is optional, everything train
  without it. An empty valence, arousal or expression cell means not annotated. With
  expression only, valence and arousal are the category's circumplex point; with both,
  they come from their columns and expression only sets the index. Expressions are the
  names of :data:`EXPRESSIONS` or angry, happy, sad, surprised, fearful, disgusted, in any
  case. The name is the image path without suffix (``some/dir/a``).

Pixels are read as stored (EXIF orientation is not applied, so corpus landmarks stay in
the image's own coordinates). Hidden files and folders are skipped.
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from avstan.data.corpora.acted import PARTITIONS, emotion_point, warn_skipped
from avstan.data.corpora.common import (
    SPLIT_FILE,
    check_folder,
    parse_number,
    partition_name,
    read_lines,
)
from avstan.errors import AvstanError

EXPRESSIONS: tuple[str, ...] = ("neutral", "happiness", "sadness", "surprise", "fear",
                                "disgust", "anger", "contempt")
EXPRESSION_SYNONYMS = {"angry": "anger", "happy": "happiness", "sad": "sadness",
                       "surprised": "surprise", "fearful": "fear", "disgusted": "disgust"}
_EXPRESSION_INDEX = {name: index for index, name in enumerate(EXPRESSIONS)} | {
    synonym: EXPRESSIONS.index(name) for synonym, name in EXPRESSION_SYNONYMS.items()}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MIN_SIDE = 16  # px: smaller images hold no usable face
LANDMARKS = 68

FER_CSV = "fer2013.csv"
FER_SIDE = 48
FER_CODES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
FER_CODE_TEXTS = {str(number): number for number in range(len(FER_CODES))}
FER_USAGES = {"training": ("Training", "train"), "publictest": ("PublicTest", "devel"),
              "privatetest": ("PrivateTest", "test")}
FER_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)_")
FER_TOP_FOLDERS = ("train", "test")
FER_EXPECTED = (f"{FER_CSV} (emotion,pixels,Usage) or train/<emotion>/Training_*.png and "
                "test/<emotion>/{PublicTest,PrivateTest}_*.png")

AFFECTNET_SETS = {"train_set": "train", "val_set": "test"}
AFFECTNET_NOT_ANNOTATED = -2.0
AFFECTNET_NO_EXPRESSION = (8, 9, 10)  # none, uncertain, no face
AFFECTNET_DEVEL_EVERY = 20  # train_set images numbered n % 20 == 0 are devel
AFFECTNET_EXPECTED = ("train_set/ and/or val_set/ holding images/<n>.jpg and "
                      "annotations/<n>_val.npy, _aro.npy, _exp.npy (and _lnd.npy)")

LABELS_CSV = "labels.csv"
IMAGES_EXPECTED = (f"{LABELS_CSV} with an image column and valence,arousal and/or "
                   "expression, naming image files below the folder")


@dataclass
class ImageSource:
    """One labelled image of a corpus; exactly one of ``path`` and ``pixels`` is set.

    ``pixels`` (H, W) or (H, W, 3) uint8 holds inline pixels (fer2013.csv); ``landmarks``
    (68, 2) float32 are (x, y) in the image's pixels when the corpus ships them."""

    name: str
    partition: str
    path: Path | None
    pixels: np.ndarray | None
    valence: float
    arousal: float
    expression: int
    landmarks: np.ndarray | None = None

    def read(self) -> np.ndarray:
        """The image as (H, W, 3) uint8 RGB (grey replicated to 3 channels). An unreadable,
        truncated or empty file, or an image smaller than 16 px on a side, is one
        AvstanError naming the file and saying what to do."""
        if self.pixels is not None:
            where = f"{self.name} (inline pixels)"
            image = np.asarray(self.pixels)
            if image.dtype != np.uint8 or not (
                    image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
                raise AvstanError(f"{where}: pixels must be (H, W) or (H, W, 3) uint8, got "
                                  f"{image.shape} {image.dtype}; fix the corpus file")
        elif self.path is not None:
            where = str(self.path)
            image = _read_image_file(self.path)
        else:
            raise ValueError(f"image source {self.name} has neither a path nor pixels")
        height, width = image.shape[:2]
        if min(height, width) < MIN_SIDE:
            raise AvstanError(f"{where}: the image is {width}×{height} px, under the minimum "
                              f"of {MIN_SIDE} px on a side; remove it or replace it with a "
                              "larger crop")
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        return np.ascontiguousarray(image)


def _read_image_file(path: Path) -> np.ndarray:
    """The decoded pixels of ``path`` as (H, W) grey or (H, W, 3) RGB uint8. Truncated data
    is an error because PIL's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode.startswith("I"):  # 16-bit grey: keep the top 8 bits, not clip
                wide = np.asarray(image, dtype=np.int64)
                return (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)
            if image.mode != "L":
                image = image.convert("RGB")
            return np.asarray(image, dtype=np.uint8)
    except UnidentifiedImageError:
        size = path.stat().st_size if path.is_file() else 0
        what = "an empty file" if size == 0 else "not an image PIL can read"
        raise AvstanError(f"{path}: {what}; re-extract or remove it") from None
    except Image.DecompressionBombError:
        raise AvstanError(f"{path}: the image is implausibly large for a face image; "
                          "downscale or remove it") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise AvstanError(f"{path}: cannot read the image ({reason}); re-extract or remove "
                          "it") from None


def expression_index(text: str, where: str) -> int:
    """The index into EXPRESSIONS of a category name or synonym (any case); an unknown
    name raises AvstanError naming ``where``."""
    index = _EXPRESSION_INDEX.get(text.strip().lower())
    if index is None:
        accepted = ", ".join(list(EXPRESSIONS) + list(EXPRESSION_SYNONYMS))
        raise AvstanError(f"{where}: unknown expression '{text.strip()}'; use one of "
                          f"{accepted}")
    return index


def _category_source(name: str, partition: str, category: str, path: Path | None = None,
                     pixels: np.ndarray | None = None) -> ImageSource:
    valence, arousal = emotion_point(category)
    return ImageSource(name=name, partition=partition, path=path, pixels=pixels,
                       valence=valence, arousal=arousal,
                       expression=EXPRESSIONS.index(category))


def _is_image(entry: os.DirEntry) -> bool:
    return (not entry.name.startswith(".") and entry.is_file()
            and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES)


def _image_files(folder: Path) -> list[Path]:
    """The images directly in ``folder`` (not hidden), sorted."""
    with os.scandir(folder) as entries:
        return sorted(Path(entry.path) for entry in entries if _is_image(entry))


def _subfolders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return sorted(Path(entry.path) for entry in entries
                      if not entry.name.startswith(".") and entry.is_dir())


def _finish(sources: list[ImageSource], root: Path, what: str,
            expected: str) -> list[ImageSource]:
    """Sorted by (partition, name); an empty result or a repeated name raise AvstanError."""
    if not sources:
        raise AvstanError(f"{root}: no {what} found; expected {expected}")
    seen: dict[str, ImageSource] = {}
    for source in sources:
        if source.name in seen:
            first = seen[source.name]
            raise AvstanError(f"{source.path or source.name}: image name '{source.name}' is "
                              f"also used by {first.path or first.name}; remove or rename one")
        seen[source.name] = source
    return sorted(sources, key=lambda source: (source.partition, source.name))


# --- fer2013 ---------------------------------------------------------------------------

def _fer_looks_like(root: Path) -> bool:
    if (root / FER_CSV).is_file():
        return True
    for folder in _subfolders(root / "train"):
        if folder.name.lower() in _EXPRESSION_INDEX:
            with os.scandir(folder) as entries:
                if any(entry.name.startswith("Training_") for entry in entries):
                    return True
    return False


def find_fer2013(root: Path) -> list[ImageSource]:
    """The FER2013 images under ``root`` (layout: the module docstring)."""
    root = check_folder(root)
    if (root / FER_CSV).is_file():
        return _finish(read_fer2013_csv(root / FER_CSV), root, "fer2013 images", FER_EXPECTED)
    sources, skipped = [], []
    for top in FER_TOP_FOLDERS:
        for folder in _subfolders(root / top):
            images = _image_files(folder)
            if not images:
                continue
            category = EXPRESSIONS[expression_index(folder.name, str(folder))]
            for path in images:
                match = FER_PREFIX.match(path.name)
                if match is None:
                    skipped.append(path)
                    continue
                partition = FER_USAGES[match.group(1).lower()][1]
                name = path.relative_to(root).with_suffix("").as_posix()
                sources.append(_category_source(name, partition, category, path=path))
    warn_skipped(root, skipped, "FER2013's Training_/PublicTest_/PrivateTest_<n> names")
    return _finish(sources, root, "fer2013 images", FER_EXPECTED)


def read_fer2013_csv(path: Path) -> list[ImageSource]:
    """The rows of Kaggle's ``fer2013.csv`` as sources with inline (48, 48) pixels; a
    malformed row raises AvstanError naming the file and line."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            return _parse_fer2013_rows(path, csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AvstanError(f"{path}: cannot read the file ({exc.__class__.__name__}); check "
                          "that it is Kaggle's fer2013.csv") from None


def _parse_fer2013_rows(path: Path, reader) -> list[ImageSource]:
    header = [field.strip().lower() for field in next(reader, [])]
    if not {"emotion", "pixels", "usage"} <= set(header):
        raise AvstanError(f"{path}, line 1: expected the header emotion,pixels,Usage, got "
                          f"'{','.join(header)}'")
    emotion_at, pixels_at, usage_at = (header.index(key) for key in ("emotion", "pixels",
                                                                      "usage"))
    sources = []
    with warnings.catch_warnings():
        # older numpy warns (instead of raising) on text it cannot parse to the end
        warnings.simplefilter("error", DeprecationWarning)
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue
            where = f"{path}, line {reader.line_num}"
            if len(fields) != len(header):
                raise AvstanError(f"{where}: {len(fields)} fields, expected {len(header)} "
                                  "(emotion,pixels,Usage); fix or remove the row")
            code = fields[emotion_at].strip()
            if code not in FER_CODE_TEXTS:
                raise AvstanError(f"{where}: unknown emotion code '{code}'; FER2013 has 0 "
                                  "angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, "
                                  "6 neutral; fix or remove the row")
            usage = FER_USAGES.get(fields[usage_at].strip().lower())
            if usage is None:
                raise AvstanError(f"{where}: unknown Usage '{fields[usage_at].strip()}'; use "
                                  "Training, PublicTest or PrivateTest")
            try:
                values = np.fromstring(fields[pixels_at], dtype=np.int64, sep=" ")
            except (ValueError, DeprecationWarning):
                raise AvstanError(f"{where}: pixels must be whole numbers 0..255 separated "
                                  "by spaces; fix or remove the row") from None
            if values.size != FER_SIDE * FER_SIDE:
                raise AvstanError(f"{where}: {values.size} pixel values, expected "
                                  f"{FER_SIDE * FER_SIDE} (48×48); fix or remove the row")
            if values.min() < 0 or values.max() > 255:
                raise AvstanError(f"{where}: pixel values must be 0..255, got "
                                  f"{values.min()}..{values.max()}; fix or remove the row")
            pixels = values.astype(np.uint8).reshape(FER_SIDE, FER_SIDE)
            sources.append(_category_source(f"{usage[0]}_{len(sources)}", usage[1],
                                            FER_CODES[FER_CODE_TEXTS[code]], pixels=pixels))
    return sources


# --- AffectNet -------------------------------------------------------------------------

def _affectnet_looks_like(root: Path) -> bool:
    return any((root / name / "annotations").is_dir() for name in AFFECTNET_SETS)


def find_affectnet(root: Path) -> list[ImageSource]:
    """The AffectNet images under ``root`` (layout: the module docstring)."""
    root = check_folder(root)
    split = _read_image_split(root / SPLIT_FILE, _affectnet_split_name)
    sources = []
    for set_name, set_partition in AFFECTNET_SETS.items():
        folder = root / set_name
        if not folder.is_dir():
            continue
        images, annotations = folder / "images", folder / "annotations"
        for needed in (images, annotations):
            if not needed.is_dir():
                raise AvstanError(f"{needed}: no such folder; AffectNet's {set_name} holds "
                                  "images/ and annotations/ (re-extract the archive)")
        with os.scandir(annotations) as entries:
            present = {entry.name for entry in entries}
        has_landmarks = any(name.endswith("_lnd.npy") for name in present)
        for path in _image_files(images):
            name = f"{set_name}/{path.stem}"
            partition = set_partition
            if set_partition == "train" and split is None:
                partition = _affectnet_train_partition(path)
            sources.append(_affectnet_source(name, partition, path, annotations, present,
                                             has_landmarks))
    if split is not None:
        sources = _apply_split(sources, split, root / SPLIT_FILE)
    return _finish(sources, root, "AffectNet images", AFFECTNET_EXPECTED)


def _affectnet_train_partition(path: Path) -> str:
    if not path.stem.isdigit():
        raise AvstanError(f"{path}: AffectNet images are numbered (<n>.jpg), which the "
                          "default devel hold-out needs; rename it or write split.csv")
    return "devel" if int(path.stem) % AFFECTNET_DEVEL_EVERY == 0 else "train"


def _affectnet_source(name: str, partition: str, path: Path, annotations: Path,
                      present: set[str], has_landmarks: bool) -> ImageSource:
    def annotation(kind: str) -> Path:
        file = annotations / f"{path.stem}_{kind}.npy"
        if file.name not in present:
            raise AvstanError(f"{file}: missing annotation file for {path}; re-extract the "
                              "annotations or remove the image")
        return file

    valence, arousal = (_affectnet_dimension(annotation(kind)) for kind in ("val", "aro"))
    code_file = annotation("exp")
    code = _npy_number(code_file)
    if not code.is_integer() or not (0 <= code < len(EXPRESSIONS)
                                     or int(code) in AFFECTNET_NO_EXPRESSION):
        raise AvstanError(f"{code_file}: unknown expression code {code:g}; AffectNet has 0..7 "
                          "(neutral … contempt) and 8..10 (none, uncertain, no face); fix "
                          "or remove the file")
    expression = int(code) if code < len(EXPRESSIONS) else -1
    landmarks = _affectnet_landmarks(annotation("lnd")) if has_landmarks else None
    return ImageSource(name=name, partition=partition, path=path, pixels=None,
                       valence=valence, arousal=arousal, expression=expression,
                       landmarks=landmarks)


def _npy(path: Path) -> np.ndarray:
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise AvstanError(f"{path}: cannot read the numpy file ({reason}); re-extract it") \
            from None


def _npy_number(path: Path) -> float:
    """The one number (or numeric string) a .npy file holds."""
    array = _npy(path)
    if array.size != 1:
        raise AvstanError(f"{path}: holds {array.size} values, expected one number; "
                          "re-extract it")
    value = array.reshape(-1)[0].item()
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AvstanError(f"{path}: {value!r} is not a number; re-extract it") from None


def _affectnet_dimension(path: Path) -> float:
    """Valence or arousal in [-1, 1]; AffectNet's -2 (not annotated) is NaN."""
    value = _npy_number(path)
    if value == AFFECTNET_NOT_ANNOTATED:
        return math.nan
    if not math.isfinite(value) or abs(value) > 1.0 + 1e-6:
        raise AvstanError(f"{path}: value {value:g} is outside [-1, 1] (AffectNet uses -2 "
                          "for not annotated); fix or remove the file")
    return float(np.clip(value, -1.0, 1.0))


def _affectnet_landmarks(path: Path) -> np.ndarray:
    """(68, 2) float32 from 136 values x1, y1, x2, y2, … (numbers, numeric strings, or one
    string of them separated by ``;``, ``,`` or spaces)."""
    array = _npy(path)
    if array.size == 1 and array.dtype.kind in "US":
        text = array.reshape(-1)[0].item()
        text = text.decode() if isinstance(text, bytes) else text
        array = np.asarray([part for part in re.split(r"[;,\s]+", text) if part])
    try:
        values = np.asarray(array, dtype=np.float64).reshape(-1)
    except ValueError:
        raise AvstanError(f"{path}: landmarks are not numbers; re-extract the file") from None
    if values.size != 2 * LANDMARKS:
        raise AvstanError(f"{path}: {values.size} landmark values, expected {2 * LANDMARKS} "
                          "(68 x, y pairs); re-extract the file")
    if not np.isfinite(values).all():
        raise AvstanError(f"{path}: landmarks must be finite numbers; re-extract the file")
    return values.reshape(LANDMARKS, 2).astype(np.float32)


def _affectnet_split_name(text: str) -> str:
    """``train_set/images/123.jpg`` and ``train_set/123`` name the same image."""
    parts = [part for part in text.strip().replace("\\", "/").split("/") if part]
    if len(parts) == 3 and parts[1] == "images":
        parts = [parts[0], parts[2]]
    if parts and os.path.splitext(parts[-1])[1].lower() in IMAGE_SUFFIXES:
        parts[-1] = os.path.splitext(parts[-1])[0]
    return "/".join(parts)


def _read_image_split(path: Path, name_of: Callable[[str], str]) -> dict[str, str] | None:
    """``image,partition`` lines (header optional) as ``{name: partition}``; None when the
    file does not exist."""
    if not path.is_file():
        return None
    split: dict[str, str] = {}
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [field.strip() for field in line.split(";" if ";" in line else ",")]
        if not split and [field.lower() for field in fields] == ["image", "partition"]:
            continue
        if len(fields) != 2 or not fields[0]:
            raise AvstanError(f"{path}, line {number}: expected 'image,partition', got "
                              f"'{line.strip()}'")
        name = name_of(fields[0])
        if name in split:
            raise AvstanError(f"{path}, line {number}: image '{name}' is listed twice; keep "
                              "one line per image")
        split[name] = partition_name(fields[1], f"{path}, line {number}")
    return split


def _apply_split(sources: list[ImageSource], split: dict[str, str],
                 path: Path) -> list[ImageSource]:
    """Every source's partition from ``split``; a source it lacks raises AvstanError, a
    line for an image the corpus does not have is warned about."""
    for source in sources:
        if source.name not in split:
            raise AvstanError(f"{path}: no line for image '{source.name}'; add "
                              f"'{source.name},train' (or devel, test)")
        source.partition = split[source.name]
    unused = sorted(set(split) - {source.name for source in sources})
    if unused:
        shown = ", ".join(unused[:5]) + (f" and {len(unused) - 5} more" if len(unused) > 5
                                         else "")
        warnings.warn(f"{path}: names images the corpus does not have ({shown}); those "
                      "lines are ignored — check the names", stacklevel=3)
    return sources


# --- images: a folder with labels.csv -------------------------------------------------

def _labels_header(lines: list[str]) -> tuple[int, list[str], str] | None:
    """The line index, lower-cased column names and separator of the header of
    ``labels.csv`` (its first non-empty line); None when it has no ``image`` column."""
    start = next((index for index, line in enumerate(lines) if line.strip()), None)
    if start is None:
        return None
    separator = ";" if ";" in lines[start] and "," not in lines[start] else ","
    header = [field.strip().strip("'\"").lower() for field in lines[start].split(separator)]
    return (start, header, separator) if "image" in header else None


def _images_looks_like(root: Path) -> bool:
    path = root / LABELS_CSV
    if not path.is_file():
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as file:
        first = [file.readline() for _ in range(20)]
    return _labels_header(first) is not None


def find_labelled_images(root: Path) -> list[ImageSource]:
    """The images named in ``root/labels.csv`` (layout: the module docstring)."""
    root = check_folder(root)
    path = root / LABELS_CSV
    if not path.is_file():
        raise AvstanError(f"{root}: no {LABELS_CSV}; expected {IMAGES_EXPECTED}")
    lines = read_lines(path)
    found = _labels_header(lines)
    if found is None:
        raise AvstanError(f"{path}, line 1: the header has no 'image' column; expected "
                          "image plus valence,arousal and/or expression")
    start, header, separator = found
    has_dimensions = [dimension in header for dimension in ("valence", "arousal")]
    if any(has_dimensions) and not all(has_dimensions):
        missing = "arousal" if has_dimensions[0] else "valence"
        raise AvstanError(f"{path}, line 1: valence and arousal come as a pair; add the "
                          f"{missing} column (an empty cell means not annotated)")
    if not all(has_dimensions) and "expression" not in header:
        raise AvstanError(f"{path}, line 1: no label column; expected valence,arousal "
                          "and/or expression beside image")
    rows = csv.reader(lines[start + 1:], delimiter=separator)
    sources, line_of = [], {}
    for offset, fields in enumerate(rows):
        number = start + 2 + offset
        if not any(field.strip() for field in fields):
            continue
        where = f"{path}, line {number}"
        if len(fields) != len(header):
            raise AvstanError(f"{where}: {len(fields)} fields, expected {len(header)} "
                              f"({separator.join(header)}); fix the row")
        row = dict(zip(header, fields, strict=True))
        image = _relative_image(row["image"], where)
        if image in line_of:
            raise AvstanError(f"{where}: image '{image}' is already listed on line "
                              f"{line_of[image]}; keep one row per image")
        line_of[image] = number
        if not (root / image).is_file():
            raise AvstanError(f"{where}: no image file {root / image}; fix the path or "
                              "remove the row")
        sources.append(_labelled_row(row, image, root, where, all(has_dimensions)))
    return _finish(sources, root, "labelled images", IMAGES_EXPECTED)


def _relative_image(text: str, where: str) -> str:
    parts = [part for part in text.strip().strip("'\"").replace("\\", "/").split("/")
             if part not in ("", ".")]
    if not parts or text.strip().startswith(("/", "\\")) or ".." in parts \
            or re.match(r"^[A-Za-z]:", parts[0]):
        raise AvstanError(f"{where}: image '{text.strip()}' must be a path below the folder "
                          "of labels.csv (e.g. faces/a.jpg)")
    return "/".join(parts)


def _labelled_row(row: dict[str, str], image: str, root: Path, where: str,
                  has_dimensions: bool) -> ImageSource:
    text = row.get("expression", "").strip().strip("'\"")
    expression = expression_index(text, where) if text else -1
    if has_dimensions:
        valence, arousal = (parse_number(row[dimension], where, missing_is_nan=True)
                            for dimension in ("valence", "arousal"))
        for dimension, value in (("valence", valence), ("arousal", arousal)):
            if abs(value) > 1.0 + 1e-6:
                raise AvstanError(f"{where}: {dimension} {value:g} is outside [-1, 1]; "
                                  "rescale the column")
        valence, arousal = (float(np.clip(value, -1.0, 1.0)) for value in (valence, arousal))
    elif expression >= 0:
        valence, arousal = emotion_point(EXPRESSIONS[expression])
    else:
        valence = arousal = math.nan
    partition = partition_name(row["partition"], where) if "partition" in row else "train"
    return ImageSource(name=os.path.splitext(image)[0], partition=partition,
                       path=root / image, pixels=None, valence=valence, arousal=arousal,
                       expression=expression)


# --- layouts -------------------------------------------------------------------------

IMAGE_LAYOUTS: dict[str, Callable[[Path], list[ImageSource]]] = {
    "fer2013": find_fer2013,
    "affectnet": find_affectnet,
    "images": find_labelled_images,
}
_LOOKS_LIKE: dict[str, Callable[[Path], bool]] = {
    "fer2013": _fer_looks_like,
    "affectnet": _affectnet_looks_like,
    "images": _images_looks_like,
}


def looks_like_image_corpus(root: Path) -> str | None:
    """The image layout whose files are in ``root``, None when none is (or ``root`` is not
    a folder); AvstanError when several are."""
    root = Path(root)
    if not root.is_dir():
        return None
    matches = [name for name, looks_like in _LOOKS_LIKE.items() if looks_like(root)]
    if len(matches) > 1:
        raise AvstanError(f"{root}: looks like several image corpora ({', '.join(matches)}); "
                          "name the layout")
    return matches[0] if matches else None


def find_image_corpus(root: Path, layout: str = "auto") -> tuple[str, list[ImageSource]]:
    """``(layout, sources sorted by (partition, name))``; ``layout="auto"`` detects it."""
    root = check_folder(Path(root))
    known = ", ".join(IMAGE_LAYOUTS)
    if layout != "auto" and layout not in IMAGE_LAYOUTS:
        raise AvstanError(f"{root}: unknown image corpus layout '{layout}'; use auto or one "
                          f"of {known}")
    if layout == "auto":
        detected = looks_like_image_corpus(root)
        if detected is None:
            raise AvstanError(f"{root}: matches none of the image corpus layouts ({known}); "
                              f"expected {FER_EXPECTED}, or {AFFECTNET_EXPECTED}, or "
                              f"{IMAGES_EXPECTED}")
        layout = detected
    return layout, IMAGE_LAYOUTS[layout](root)


def partition_counts(sources: Iterable[ImageSource]) -> dict[str, int]:
    """``{partition: number of images}``, always with train, devel and test (0 if empty)."""
    counts = dict.fromkeys(PARTITIONS, 0)
    for source in sources:
        counts[source.partition] = counts.get(source.partition, 0) + 1
    return counts
