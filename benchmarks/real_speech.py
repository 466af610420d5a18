"""Real speech with few speakers: the AVEC SVR baseline against ``lstm`` and ``lstm_ta``.

RAVDESS speech (``../shared/data/speech-ravdess/``, 24 actors) prepared as continuous
recordings (``avstan prepare --layout ravdess --continuous``: one recording per actor,
blocks of up to 3 same-category utterances, 0.5 s silences, labels at 10 Hz from the
circumplex table; defaults otherwise: 4 steps/s, 4 s eGeMAPS windows). Fixed speakers:
devel Actor_19–20, test Actor_21–24 (the reader's default split); training on the first
6 (Actor_01–06, 3 male, 3 female) or all 18 (Actor_01–18). The store is prepared once
into ``WORK/store``; a setting's store is a view of it (links to the same files, a
manifest of its speakers). Each learned model is trained with its demo config
(``src/avstan/configs/demo_<model>.yaml``, ``--set`` overrides on top) for every seed; the
baseline is deterministic and run once; ``baseline_lookahead`` is the SVR reading as far
ahead as the learned models (``avstan baseline --lookahead`` with their ``lookahead``).
Prints mean ± sd over seeds of the concatenated CCC on ``--partition`` (test by default;
use devel to choose settings), raw and after the AVEC chain fitted on devel. Runs are
kept under ``WORK/runs`` and reused.

    .venv/bin/python benchmarks/real_speech.py [--speakers 6 18] [--seeds 0 1 2]
        [--models baseline baseline_lookahead lstm lstm_ta] [--partition test] [--set KEY=VALUE ...]
        [--tag NAME] [--audio-window SECONDS [SECONDS ...]] [--lld] [--work runs/real_speech]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

from avstan.data.audio import LLD_HOP, SAMPLE_RATE, clip_for_opensmile, load_audio
from avstan.data.continuous import ContinuousConfig
from avstan.data.prepare import PrepareConfig, prepare_folder
from avstan.data.store import RecordingStore
from avstan.evaluation.baseline import run_baseline
from avstan.evaluation.evaluate import evaluate_model_file
from avstan.experiments.calibrated_training import train_and_calibrate
from avstan.training.config import load_config, packaged_config

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "speech-ravdess"
TRAIN_SPEAKERS = {6: [f"Actor_{n:02d}" for n in range(1, 7)],
                  18: [f"Actor_{n:02d}" for n in range(1, 19)]}
TARGETS = ("valence", "arousal")


def store_name(audio_window: float | None) -> str:
    """``store`` for prepare's default eGeMAPS window, ``store_w1`` for a 1 s one."""
    if audio_window is None or audio_window == PrepareConfig.audio_window:
        return "store"
    return f"store_w{audio_window:g}"


def full_store(work: Path, corpus: Path, audio_window: float | None = None) -> Path:
    store = work / store_name(audio_window)
    config = PrepareConfig() if audio_window is None else PrepareConfig(audio_window=audio_window)
    summary = prepare_folder(corpus, store, config, layout="ravdess", workers=1,
                             progress=False, log=lambda line: None,
                             continuous=ContinuousConfig())
    if summary.failed:
        raise SystemExit(f"{store}: {len(summary.failed)} recordings failed: {summary.failed}")
    return store


def lld_frames(path: Path, times: np.ndarray, step_seconds: float) -> np.ndarray:
    """The eGeMAPS low-level descriptors (25, every 10 ms) of the frames that start in each
    step's hop ``[t - step_seconds, t)``: ``(N, frames × 25)``, frame-major (the frames of
    the first step, which has no hop before it, are NaN, which the standardiser maps to 0)."""
    import opensmile

    smile = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02,
                            opensmile.FeatureLevel.LowLevelDescriptors)
    table = smile.process_signal(clip_for_opensmile(load_audio(path)), SAMPLE_RATE)
    values = table.to_numpy(dtype=np.float32)
    starts = np.rint(table.index.get_level_values("start").total_seconds().to_numpy()
                     / LLD_HOP).astype(np.int64)
    if not np.array_equal(starts, np.arange(len(starts))):
        raise RuntimeError(f"{path}: openSMILE's LLD frames are not every {LLD_HOP} s")
    per_step = int(round(step_seconds / LLD_HOP))
    first = np.rint(times / LLD_HOP).astype(np.int64) - per_step
    index = first[:, None] + np.arange(per_step)[None, :]  # (N, frames)
    padded = np.concatenate([values, np.full((1, values.shape[1]), np.nan, np.float32)])
    index = np.where((index >= 0) & (index < len(values)), index, len(values))
    return padded[index].reshape(len(times), -1)


def derived_store(target: Path, source: Path, features, **attrs) -> Path:
    """A store at ``target`` with the recordings of ``source`` whose audio features are
    ``features(name, recording)`` instead (``attrs`` added to the source's); recordings
    already there are kept, so a rerun only adds what is missing."""
    full = RecordingStore.open(source)
    out = RecordingStore.create(target, corpus=full.corpus, **{**full.attrs, **attrs})
    for name in full.names():
        if not out.is_complete(name):
            recording = full.load(name, load_frames=False)
            recording.audio_features = features(name, recording)
            out.add(recording)
    return target


def windows_store(work: Path, stores: list[Path], windows: list[float]) -> Path:
    """``WORK/store_w4+6`` (for windows 4 and 6): each step's functionals of every window,
    side by side (88 per window, in the order given), from the stores of one window each."""
    others = [RecordingStore.open(store) for store in stores[1:]]

    def side_by_side(name: str, recording) -> np.ndarray:
        recordings = [other.load(name, load_frames=False) for other in others]
        if any(not np.array_equal(r.times, recording.times) for r in recordings):
            raise SystemExit(f"{name}: the stores' step times differ")
        return np.concatenate([recording.audio_features,
                               *(r.audio_features for r in recordings)], axis=1)

    return derived_store(work / ("store_w" + "+".join(f"{w:g}" for w in windows)), stores[0],
                         side_by_side, audio_window=list(windows))


def lld_store(work: Path, store: Path) -> Path:
    """``WORK/store_lld``: the recordings of ``store`` with each step's LLD frames
    (:func:`lld_frames`) as its audio features instead of the eGeMAPS functionals."""
    return derived_store(work / "store_lld", store, lambda name, recording: lld_frames(
        store / "continuous" / f"{name}.wav", recording.times, 1.0 / recording.step_rate),
        audio_features="egemaps_lld_frames")


def speaker_store(work: Path, store: Path, speakers: int) -> Path:
    """A store with the given training speakers and every devel and test speaker."""
    view = work / f"{store.name}_{speakers}"
    full = RecordingStore.open(store)
    keep = set(TRAIN_SPEAKERS[speakers]) | set(full.names("devel")) | set(full.names("test"))
    subset = RecordingStore.create(view, corpus=full.corpus, **full.attrs)
    for name in sorted(keep):
        entry = full.entries[name]
        link = view / entry.file
        if not link.exists():
            os.symlink((store / entry.file).resolve(), link)
        subset.entries[name] = entry
    subset.save_manifest()
    return view


def ccc(evaluation, postprocessed: bool) -> list[float]:
    scores = evaluation.postprocessed_scores if postprocessed else evaluation.scores
    return [scores[t]["concatenated"]["ccc"] for t in TARGETS]


def models_lookahead(overrides: list[str]) -> int:
    """The lookahead (steps) of the learned models: demo_lstm_ta's, overrides applied."""
    config = load_config(packaged_config("demo_lstm_ta"), overrides)
    return int(config.model.options.get("lookahead", 0))


def run_model(model: str, store: Path, run: Path, seed: int, overrides: list[str],
              partition: str) -> tuple[list[float], list[float]]:
    if model in ("baseline", "baseline_lookahead"):
        lookahead = models_lookahead(overrides) if model == "baseline_lookahead" else 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluation, _ = run_baseline(store, None, partition, lookahead=lookahead)
        return ccc(evaluation, False), ccc(evaluation, True)
    config = load_config(packaged_config(f"demo_{model}"), [
        *overrides, f"data.store={store}", f"output={run}", f"training.seed={seed}"])
    trained = train_and_calibrate(config, progress=False)
    evaluation = evaluate_model_file(trained.model_path, store, partition, progress=False)
    return ccc(evaluation, False), ccc(evaluation, True)


def cell(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 \
        else f"{values[0]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, nargs="+", default=[6, 18],
                        choices=sorted(TRAIN_SPEAKERS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=["baseline", "lstm", "lstm_ta"])
    parser.add_argument("--partition", default="test", choices=["devel", "test"])
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override for the learned models")
    parser.add_argument("--tag", default="default", help="names the runs of these overrides")
    parser.add_argument("--audio-window", type=float, nargs="+", default=None,
                        metavar="SECONDS",
                        help="the eGeMAPS window of a store of its own (WORK/store_wSECONDS; "
                             "default: prepare's, in WORK/store); with several, each step's "
                             "functionals of every window side by side (WORK/store_w4+6: set "
                             "model.options.audio_features=176); give the runs a --tag of "
                             "their own")
    parser.add_argument("--lld", action="store_true",
                        help="each step's eGeMAPS low-level descriptors (25 frames of 25, "
                             "WORK/store_lld) instead of the functionals; set "
                             "model.options.audio_features=625 and a --tag of their own")
    parser.add_argument("--work", default="runs/real_speech")
    parser.add_argument("--corpus", default=str(CORPUS))
    args = parser.parse_args()
    work = Path(args.work)
    started = time.perf_counter()
    windows = args.audio_window or [None]
    stores = [full_store(work, Path(args.corpus), window) for window in windows]
    store = stores[0] if len(stores) == 1 else windows_store(work, stores, windows)
    if args.lld:
        store = lld_store(work, store)
    rows = []
    for speakers in args.speakers:
        view = speaker_store(work, store, speakers)
        for model in args.models:
            seeds = [0] if model.startswith("baseline") else args.seeds
            raw, processed = [], []
            for seed in seeds:
                run = work / "runs" / args.tag / f"{model}_{speakers}spk_seed{seed}"
                r, p = run_model(model, view, run, seed, args.overrides, args.partition)
                raw.append(r)
                processed.append(p)
                print(f"  {speakers} speakers, {model}, seed {seed}: {args.partition} CCC "
                      f"V {r[0]:.3f} A {r[1]:.3f} (post-processed {p[0]:.3f} / {p[1]:.3f})",
                      flush=True)
            raw, processed = np.array(raw), np.array(processed)
            name = {"baseline": "`avstan baseline` (SVR)",
                    "baseline_lookahead": f"`avstan baseline --lookahead "
                                          f"{models_lookahead(args.overrides)}` (SVR)"
                    }.get(model, f"`{model}`")
            rows.append(f"| {speakers} | {name} | {len(seeds)} | {cell(raw[:, 0])} | "
                        f"{cell(raw[:, 1])} | {cell(processed[:, 0])} | {cell(processed[:, 1])} |")
    print(f"\n{args.partition} CCC (concatenated), mean ± sd over seeds; overrides: "
          f"{' '.join(args.overrides) or 'none'} ({time.perf_counter() - started:.0f} s)\n")
    print("| training speakers | model | seeds | CCC valence | CCC arousal | "
          "valence, post-processed | arousal, post-processed |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
