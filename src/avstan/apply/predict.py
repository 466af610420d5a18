"""Any video in, emotion curves out: ``avstan predict MODEL VIDEO|FOLDER``.

The same code as ``prepare`` and ``evaluate`` does every stage — sampling and face
alignment (``data.prepare.prepare_recording``, with the model's crop size, step rate and
alignment template), sliding-window prediction with missing-face interpolation
(``evaluation.inference``), and the post-processing chain stored in the model file — so
predictions on a new video are made exactly as the model was scored.

Audio models (``lstm``, ``lstm_ta``) read the sound of a video or of an audio file (eGeMAPS
with the window of their training store, no face search); the fusion (``av_sta``) reads
both, and a video without a usable audio track is reported and skipped for it.

Per input video, into the output folder:

    <name>.csv          time, valence, arousal, face_found (one row per step); for a model
                        with an expression head (the packaged ``frame2d-fer2013``) also
                        ``expression`` (its most probable class at that step) and one
                        ``p_<class>`` column per class (its probabilities, not smoothed)
    <name>.png          valence and arousal over time, steps without a face shaded
    <name>.overlay.mp4  with ``overlay``: the video with the attention map over the face (for
                        models with attention) and the current values drawn (``apply.overlay``)
    <name>.html         with ``html``: a self-contained page playing the video (the overlay
                        if made) beside the curves, in sync (``apply.prediction_page``)

With ``all_faces`` (``--all-faces``) every person in the video is followed with a stable
identity (``data.people``) and gets ``<name>.person<k>.csv`` and ``.png``; the overlay and
the page then show each person's box and curves.

Outputs that exist are refused unless ``overwrite``, or unless they were written by the
same command (model and settings, recorded in ``<output>/.avstan-predict.json``): the run
then resumes, skipping each video whose outputs are all there and redoing the others.
Each file is written atomically, a video that fails leaves nothing behind (files already
written for it are removed), and the temporary files of a run killed outright are removed
by the next run into the folder (which holds the folder's lock, ``io.exclusive_output``).
"""

from __future__ import annotations

import csv
import errno
import io
import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avstan.apply.overlay import write_overlay_video
from avstan.apply.prediction_page import page_video, write_prediction_page
from avstan.cluster import RayRun, check_engine, check_reachable, check_shared_folder
from avstan.data.audio import NoAudioError
from avstan.data.corpora.base import AUDIO_SUFFIXES, VIDEO_SUFFIXES, RecordingSource
from avstan.data.corpora.common import walk_files
from avstan.data.corpora.images import EXPRESSIONS
from avstan.data.faces import DEFAULT_TEMPLATE, FaceAligner
from avstan.data.people import prepare_people
from avstan.data.prepare import (
    PrepareConfig,
    audio_features,
    make_aligner,
    prepare_audio_recording,
    prepare_recording,
)
from avstan.data.store import Recording
from avstan.data.video import sample_video
from avstan.devices import autocast_for
from avstan.errors import AvstanError
from avstan.evaluation.inference import predict_recordings
from avstan.evaluation.plots import plot_emotion_curves
from avstan.evaluation.postprocess import PostProcessing, chains_from_dicts
from avstan.io import atomic_write_bytes, ensure_writable_folder
from avstan.memory import fix_mmap_threshold
from avstan.models.model_file import TrainedModel
from avstan.progress import progress_bar


@dataclass
class VideoPrediction:
    name: str
    times: np.ndarray  # (N,)
    values: np.ndarray  # (N, K), post-processed when the model carries a chain
    face_found: np.ndarray  # (N,)
    targets: tuple[str, ...]
    csv_path: Path
    plot_path: Path
    overlay_path: Path | None = None
    html_path: Path | None = None
    expressions: np.ndarray | None = None  # (N, E) the expression head's probabilities


def output_suffixes(overlay: bool = False, html: bool = False) -> tuple[str, ...]:
    """The files ``predict`` writes per video, as suffixes of the video's stem."""
    return (".csv", ".png") + ((".overlay.mp4",) if overlay else ()) + ((".html",) if html
                                                                        else ())


RUN_RECORD = ".avstan-predict.json"  # the command that writes into an output folder


def run_record(model_path: str | Path, hop: int, postprocess: bool, overlay: bool,
               html: bool, redetect_every: int | None, detector: str | None,
               all_faces: bool, precision: str) -> dict:
    """What decides a predict run's outputs: a folder written with the same record may be
    resumed, one with another is refused without --overwrite."""
    model = Path(model_path)
    return {"model": str(model.resolve()) if model.exists() else str(model_path),
            "model_bytes": model.stat().st_size if model.is_file() else None,
            "hop": hop, "postprocess": postprocess, "overlay": overlay, "html": html,
            "redetect_every": redetect_every, "detector": detector, "all_faces": all_faces,
            "precision": precision}


def read_run_record(output: Path) -> dict | None:
    try:
        record = json.loads((output / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def video_complete(output: Path, stem: str, overlay: bool, html: bool,
                   all_faces: bool) -> bool:
    """Whether every file predict writes for the video ``stem`` is there."""
    suffixes = output_suffixes(overlay, html)
    if all_faces:
        people = [p.name[len(stem):-4] for p in output.glob(f"{stem}.person*.csv")]
        return bool(people) and all(
            output_exists(output / f"{stem}{person}.png") for person in people) and all(
            output_exists(output / f"{stem}{suffix}") for suffix in suffixes[2:])
    return all(output_exists(output / f"{stem}{suffix}") for suffix in suffixes)


def remove_stray_temporaries(output: Path, stems: Sequence[str]) -> list[Path]:
    """The temporary files (``io.atomic_path``'s ``.<name>.<random><suffix>``) that a run
    killed outright left for these videos' outputs; removed, and returned. Only a run
    holding the folder's lock may call this: no other avstan run writes there."""
    from avstan.io import TEMPORARY_HEAD

    removed = []
    for entry in output.iterdir() if output.is_dir() else ():
        name = entry.name
        if not name.startswith(".") or not entry.is_file():
            continue
        for stem in stems:
            head = f".{stem}"[:TEMPORARY_HEAD + 1]
            if name.startswith(head) and re.search(r"\.[a-z0-9_]{8}(\.tmp|\.mp4)$", name):
                entry.unlink(missing_ok=True)
                removed.append(entry)
                break
    return removed


def drop_unused_run_record(output: Path, stems: Sequence[str]) -> None:
    """Remove the run record when the folder holds no output of these videos (every video
    failed): a folder the run made is then empty again and removed with its lock
    (``io.exclusive_output``), and a folder of the user's is left as it was."""
    try:
        names = [entry.name for entry in output.iterdir()]
    except OSError:
        return
    if not any(name.startswith(f"{stem}.") for name in names for stem in stems):
        (output / RUN_RECORD).unlink(missing_ok=True)


def output_exists(path: Path) -> bool:
    """Whether an output file is there; a name too long for the file system cannot be (the
    video it belongs to then fails alone, when its outputs are written)."""
    try:
        return path.exists()
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:
            return False
        raise


def find_videos(path: str | Path, suffixes: Sequence[str] = VIDEO_SUFFIXES) -> list[Path]:
    """A media file, or the files of a folder (recursively) with one of ``suffixes``
    (videos; audio models take audio files too), sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        # each real folder once (a link loop is not followed round), hidden names skipped
        # below the folder given (a folder inside a hidden one, ~/.cache/clips, still counts)
        videos = walk_files(path, tuple(s.lower() for s in suffixes))
        if videos:
            return videos
        raise AvstanError(f"{path}: no media files ({', '.join(suffixes)}) in this folder")
    raise AvstanError(f"{path}: no such file or folder")


def interpolate_steps(steps: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """Values predicted at ``steps`` (M,), (M, K) → every step 0 … count-1, linearly."""
    every = np.arange(count)
    return np.stack([np.interp(every, steps, column) for column in values.T], axis=1)


def person_colours(names: Sequence[str], per_person: int) -> dict[str, str]:
    """A colour per curve of the ``--all-faces`` page: one hue per person, the person's
    targets in a darker and a lighter shade."""
    from matplotlib import colormaps

    table = colormaps["tab20"]
    colours = {}
    for index, name in enumerate(names):
        person, target = divmod(index, per_person)
        r, g, b, _ = table(((person % 10) * 2 + min(target, 1)) / 20)
        colours[name] = f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"
    return colours


def expression_columns(classes: int) -> list[str]:
    """The CSV columns of an expression head over ``EXPRESSIONS[:classes]`` (none for 0):
    ``expression`` (the most probable class) and ``p_<class>`` per class."""
    return ["expression", *[f"p_{name}" for name in EXPRESSIONS[:classes]]] if classes else []


def most_probable_expression(probabilities: np.ndarray) -> tuple[str, float]:
    """The class (of ``EXPRESSIONS``) with the highest probability in (E,), and that
    probability."""
    best = int(np.argmax(probabilities))
    return EXPRESSIONS[best], float(probabilities[best])


def expression_cells(probabilities: np.ndarray | None, classes: int) -> list[str]:
    """One step's cells under :func:`expression_columns`; empty cells where there are no
    probabilities yet (a stream before its first face)."""
    if not classes:
        return []
    if probabilities is None:
        return [""] * (classes + 1)
    return [most_probable_expression(probabilities)[0], *[f"{p:.4f}" for p in probabilities]]


def expression_labels(probabilities: np.ndarray | None) -> list[str] | None:
    """Per step, the most probable expression and its probability ("happiness 0.74")."""
    if probabilities is None:
        return None
    return ["{} {:.2f}".format(*most_probable_expression(p)) for p in probabilities]


def predictions_csv(times: np.ndarray, values: np.ndarray, found: np.ndarray,
                    targets: Sequence[str], expressions: np.ndarray | None = None) -> bytes:
    """The CSV of one video (or person): a row per step. With ``expressions`` (N, E), the
    class probabilities of the model's expression head over ``EXPRESSIONS[:E]``, each row
    also names its most probable class and gives every class's probability."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    classes = 0 if expressions is None else expressions.shape[1]
    writer.writerow(["time", *targets, "face_found", *expression_columns(classes)])
    for i in range(len(times)):
        writer.writerow([f"{times[i]:.3f}", *[f"{v:.5f}" for v in values[i]], int(found[i]),
                         *expression_cells(None if expressions is None else expressions[i],
                                           classes)])
    return buffer.getvalue().encode()


@dataclass
class Predictor:
    """A trained model ready for new media: what to read from a file and how (the
    training store's crop size, step rate, alignment template, face-search interval and
    eGeMAPS window, from the model file), the face aligner (loaded once) and the model's
    post-processing chain."""

    trained: TrainedModel
    config: PrepareConfig
    aligner: FaceAligner | None  # None for audio models: they never look for a face
    chains: dict[str, PostProcessing] | None
    device: str = "cpu"
    precision: str = "32-true"  # devices.autocast_for: 32-true, bf16-mixed, 16-mixed (CUDA)

    @classmethod
    def load(cls, model_path: str | Path, device: str = "cpu", postprocess: bool = True,
             redetect_every: int | None = None, detector: str | None = None,
             precision: str = "32-true") -> Predictor:
        """``redetect_every`` (k: search for the face every k-th step, follow its landmarks
        in between) and ``detector`` (yunet or hog) default to the values of the store the
        model was trained on; ``precision``: the model's arithmetic (bf16-mixed halves
        its memory traffic on a GPU)."""
        autocast_for(device, precision)  # an unknown or unsupported one: one line, first
        trained = TrainedModel.load(model_path, device)
        trained.check_media_audio(model_path)
        config = prepare_config_for(trained, redetect_every, detector)
        aligner = make_aligner(config) if trained.reads_video else None
        chains = chains_from_dicts(trained.postprocessing) if postprocess else None
        return cls(trained, config, aligner, chains, device, precision)

    @property
    def media_suffixes(self) -> tuple[str, ...]:
        """The files it can read: videos, and audio files for audio models."""
        return VIDEO_SUFFIXES if self.trained.reads_video else VIDEO_SUFFIXES + AUDIO_SUFFIXES

    def prepare_media(self, media: Path, spool_folder: Path | None = None) -> Recording:
        """What the model reads from ``media``, with the code of ``avstan prepare``: aligned
        face crops for video models, eGeMAPS features (``config.audio_window``) for audio
        models, both for the fusion; a missing input is one AvstanError naming the file.
        With ``spool_folder`` the crops stay on disk there (``data.spool``; call
        ``recording.close_frames()`` when done)."""
        trained = self.trained
        source = RecordingSource(media.stem, "test", media=media)
        recording = None
        try:
            if not trained.reads_video:
                return prepare_audio_recording(source, self.config)
            recording = prepare_recording(source, self.config, aligner=self.aligner,
                                          spool_folder=spool_folder)
            if trained.reads_audio:
                recording.audio_features = audio_features(source, recording.times,
                                                          self.config)
            return recording
        except BaseException as error:
            if recording is not None:
                recording.close_frames()
            if isinstance(error, NoAudioError):
                raise AvstanError(f"{error} — {trained.model_name} reads audio, so it cannot "
                                  "predict this file; use a video-only model for it") from None
            raise

    def final_values(self, predicted: np.ndarray, steps: int, hop: int) -> np.ndarray:
        """Every step's values (steps, K) from those predicted every ``hop``-th step:
        interpolated, post-processed by the model's chain, clipped to [-1, 1]."""
        values = (interpolate_steps(np.arange(0, steps, hop), predicted, steps) if hop > 1
                  else predicted)
        if self.chains:
            values = np.stack([self.chains[t].apply([values[:, k]])[0]
                               for k, t in enumerate(self.trained.targets)], axis=1)
        return np.clip(values, -1.0, 1.0)

    @staticmethod
    def final_expressions(probabilities: np.ndarray | None, steps: int, hop: int
                          ) -> np.ndarray | None:
        """Every step's expression probabilities (steps, E) from those predicted every
        ``hop``-th step, linearly interpolated (still probabilities); not smoothed."""
        if probabilities is None or hop == 1:
            return probabilities
        return interpolate_steps(np.arange(0, steps, hop), probabilities, steps)

    def check_steps(self, video: Path, steps: int, hop: int) -> None:
        """Refuse a ``hop`` as long as the video; warn when it is shorter than one clip."""
        clip_length = self.trained.clip_length
        if hop > 1 and hop >= steps:
            raise AvstanError(f"{video}: --hop {hop} is not shorter than the video "
                              f"({steps} steps): every value would be the first step's; use a "
                              "smaller --hop")
        if steps < clip_length:
            seconds = clip_length / self.config.step_rate
            warnings.warn(f"{video}: shorter than one clip ({steps} steps, the model reads "
                          f"{clip_length} = {seconds:g} s): its clips are padded with the "
                          "first frame, as evaluation pads the first steps of every "
                          "recording", stacklevel=3)

    def predict_people(self, video: Path, output: Path, hop: int = 1, progress: bool = False,
                       overlay: bool = False, html: bool = False) -> list[VideoPrediction]:
        """``--all-faces``: one curve per person in ``video`` (``data.people``), written as
        ``<name>.person<k>.csv`` / ``.png``; ``overlay`` and ``html`` show every person's
        box and curves in ``<name>.overlay.mp4`` / ``<name>.html``. A file that fails leaves
        none of its outputs."""
        trained, config = self.trained, self.config
        if not trained.reads_video:
            raise AvstanError(f"--all-faces follows faces, and {trained.model_name} reads only "
                              "the sound; leave --all-faces out for audio models")
        people = prepare_people(sample_video(video, config.step_rate), self.aligner,
                                video.stem, config.step_rate, str(video),
                                spool_folder=output)
        try:
            return self._predict_people(video, output, people, hop, progress, overlay, html)
        finally:
            people[0].recording.close_frames()  # the one spool all the people's crops share

    def _predict_people(self, video: Path, output: Path, people, hop: int, progress: bool,
                        overlay: bool, html: bool) -> list[VideoPrediction]:
        """:meth:`predict_people` once the people are found."""
        trained, config, targets = self.trained, self.config, self.trained.targets
        source = RecordingSource(video.stem, "test", media=video)
        if trained.reads_audio:
            try:
                features = audio_features(source, people[0].recording.times, config)
            except NoAudioError as error:
                raise AvstanError(f"{error} — {trained.model_name} reads audio, so it cannot "
                                  "predict this file; use a video-only model for it") from None
            for person in people:
                person.recording.audio_features = features
        steps = people[0].recording.num_steps
        self.check_steps(video, steps, hop)
        predictions = predict_recordings(trained.network, [p.recording for p in people],
                                         targets, trained.clip_length, device=self.device,
                                         step=hop, progress=progress,
                                         precision=self.precision)
        values = [self.final_values(p.prediction, steps, hop) for p in predictions]
        expressions = [self.final_expressions(p.expressions, steps, hop) for p in predictions]
        times = people[0].recording.times
        written: list[Path] = []
        results = []
        try:
            for person, person_values, person_expressions in zip(people, values, expressions,
                                                                 strict=True):
                stem = f"{video.stem}.person{person.number}"
                found = person.recording.face_found
                plot_path = output / f"{stem}.png"
                plot_emotion_curves(times, {t: person_values[:, k]
                                            for k, t in enumerate(targets)},
                                    plot_path, title=f"{video.name}, person {person.number}",
                                    missing=~found)
                written.append(plot_path)
                csv_path = output / f"{stem}.csv"
                atomic_write_bytes(csv_path, predictions_csv(times, person_values, found,
                                                             targets, person_expressions))
                written.append(csv_path)
                results.append(VideoPrediction(stem, times, person_values, found, targets,
                                               csv_path, plot_path,
                                               expressions=person_expressions))
            labels = [f"person {person.number}" for person in people]
            if overlay:
                overlay_path = output / f"{video.stem}.overlay.mp4"
                written.append(write_overlay_video(
                    video, overlay_path, times, targets=targets,
                    people=[(label, person.boxes, person_values)
                            for label, person, person_values in zip(labels, people, values,
                                                                    strict=True)]))
                for result in results:
                    result.overlay_path = overlay_path
            if html:
                html_path = output / f"{video.stem}.html"
                movie, made = page_video(written[-1] if overlay else video, output,
                                         video.stem)
                written += [made] if made is not None else []
                names = [f"{label} {t}" for label in labels for t in targets]
                joined = np.concatenate(values, axis=1)
                written.append(write_prediction_page(
                    html_path, video.name, movie, times, joined, names,
                    np.any([p.recording.face_found for p in people], axis=0),
                    times[-1] + 1.0 / config.step_rate,
                    note=f"{' and '.join(targets)} of each of {len(people)} people per step "
                         f"of {1 / config.step_rate:g} s; shaded: nobody's face found.",
                    colours=person_colours(names, len(targets))))
                for result in results:
                    result.html_path = html_path
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        # a rerun (--overwrite) leaves exactly its own people: the files of people an
        # earlier run found and this one did not go
        mine = {path.name for path in written}
        earlier = re.compile(rf"{re.escape(video.stem)}\.person\d+\.(csv|png)")
        for stale in output.iterdir():
            if earlier.fullmatch(stale.name) and stale.name not in mine:
                stale.unlink(missing_ok=True)
        return results

    def predict_video(self, video: Path, output: Path, hop: int = 1, progress: bool = False,
                      overlay: bool = False, html: bool = False) -> VideoPrediction:
        """Predict one file into ``output`` (the files of the module docstring); a file
        that fails leaves none of its outputs.

        Memory does not grow with the video's length: the face crops and, for the overlay,
        the attention maps are spooled to nameless files in ``output`` (``data.spool``)
        and read back a clip at a time; what is held per step is a few hundred bytes
        (times, values, landmarks, alignment matrices)."""
        recording = self.prepare_media(video, spool_folder=output)
        try:
            return self._predict_prepared(video, recording, output, hop, progress, overlay,
                                          html)
        finally:
            recording.close_frames()

    def _predict_prepared(self, video: Path, recording: Recording, output: Path, hop: int,
                          progress: bool, overlay: bool, html: bool) -> VideoPrediction:
        model, targets, device = self.trained.network, self.trained.targets, self.device
        if recording.frames is None and (overlay or html):
            raise AvstanError(f"{video}: --overlay and --html draw on the video, and an audio "
                              "model reads only the sound; leave them out for audio models")
        self.check_steps(video, recording.num_steps, hop)
        (prediction,) = predict_recordings(model, [recording], targets, model.clip_length,
                                           device=device, step=hop, progress=progress,
                                           keep_attention=overlay, precision=self.precision,
                                           spool_folder=output)
        try:
            return self._write_outputs(video, recording, prediction, output, hop, overlay,
                                       html)
        finally:
            if prediction.attention is not None:  # the maps' spool (spool_folder above)
                prediction.attention.close()

    def _write_outputs(self, video: Path, recording: Recording, prediction, output: Path,
                       hop: int, overlay: bool, html: bool) -> VideoPrediction:
        config, targets = self.config, self.trained.targets
        values = self.final_values(prediction.prediction, recording.num_steps, hop)
        expressions = self.final_expressions(prediction.expressions, recording.num_steps, hop)
        labels = expression_labels(expressions)  # drawn on the overlay and the page
        csv_path, plot_path = output / f"{video.stem}.csv", output / f"{video.stem}.png"
        overlay_path = output / f"{video.stem}.overlay.mp4" if overlay else None
        html_path = output / f"{video.stem}.html" if html else None
        written: list[Path] = []
        try:
            if overlay_path is not None:
                # Each step's map is the one of the last step predicted at or before it (--hop).
                attention = (None if prediction.attention is None  # a spool: see above
                             else prediction.attention.remapped(
                                 np.arange(recording.num_steps) // hop))
                written.append(write_overlay_video(
                    video, overlay_path, recording.times, values, targets, recording.face_found,
                    attention, recording.alignment_matrices, labels=labels))
            if html_path is not None:
                movie, made = page_video(overlay_path or video, output, video.stem)
                written += [made] if made is not None else []
                written.append(write_prediction_page(
                    html_path, video.name, movie, recording.times, values, targets,
                    recording.face_found, recording.times[-1] + 1.0 / config.step_rate,
                    note=f"{' and '.join(targets)} per step of {1 / config.step_rate:g} s; shaded: "
                         "no face found (values interpolated)."
                         + (" Beside the values: the expression the model's head reads at "
                            "that step, with its probability." if expressions is not None
                            else ""),
                    labels=labels))
            missing = ~recording.face_found if recording.frames is not None else None
            plot_emotion_curves(recording.times, {t: values[:, k] for k, t in enumerate(targets)},
                                plot_path, title=video.name, missing=missing)
            written.append(plot_path)
            atomic_write_bytes(csv_path, predictions_csv(recording.times, values,
                                                         recording.face_found, targets,
                                                         expressions))
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return VideoPrediction(video.stem, recording.times, values, recording.face_found, targets,
                               csv_path, plot_path, overlay_path, html_path, expressions)


_WORKER_PREDICTOR: tuple[tuple, Predictor] | None = None


def _predict_on_ray(settings: tuple, video: Path, output: Path, hop: int, overlay: bool,
                    html: bool, all_faces: bool) -> list[VideoPrediction]:
    """A Ray task: one video's predictions, with the worker's Predictor (loaded once per
    worker process and model settings)."""
    global _WORKER_PREDICTOR
    fix_mmap_threshold()  # a Ray worker is not forked from avstan's CLI
    if _WORKER_PREDICTOR is None or _WORKER_PREDICTOR[0] != settings:
        torch.set_flush_denormal(True)
        _WORKER_PREDICTOR = (settings, Predictor.load(*settings))
    predictor = _WORKER_PREDICTOR[1]
    if all_faces:
        return predictor.predict_people(video, output, hop, False, overlay, html)
    return [predictor.predict_video(video, output, hop, False, overlay, html)]


def prepare_config_for(trained: TrainedModel, redetect_every: int | None = None,
                       detector: str | None = None) -> PrepareConfig:
    """prepare's settings that read new media as the model's training store was read."""
    return PrepareConfig(crop_size=trained.crop_size or PrepareConfig.crop_size,
                         step_rate=trained.step_rate,
                         template=trained.alignment_template or DEFAULT_TEMPLATE,
                         audio_window=trained.audio_window,
                         redetect_every=trained.face_search_interval(redetect_every),
                         detector=trained.face_detector(detector))


def predict_videos(model_path: str | Path, inputs: str | Path, output: str | Path,
                   device: str = "cpu", hop: int = 1, overwrite: bool = False,
                   postprocess: bool = True, progress: bool = True, log=print,
                   overlay: bool = False, html: bool = False,
                   redetect_every: int | None = None, detector: str | None = None,
                   all_faces: bool = False, engine: str = "local",
                   ray_address: str | None = None, precision: str = "32-true"
                   ) -> tuple[list[VideoPrediction], list[tuple[Path, str]]]:
    """Predict every video of ``inputs``; returns (predictions, [(video, reason) failed]).

    ``overlay`` adds ``<name>.overlay.mp4``, ``html`` adds ``<name>.html`` (module docstring).
    ``redetect_every``, ``detector``: see :meth:`Predictor.load`. ``all_faces``: one curve
    per person (:meth:`Predictor.predict_people`) instead of the main face's. ``engine``
    "ray": each video is a Ray task (one CPU, and one GPU when ``device`` is CUDA) on the
    cluster at ``ray_address`` or a local Ray instance (``avstan.cluster``); the output
    folder must be on storage every node sees.
    """
    if hop < 1:
        raise AvstanError(f"--hop must be at least 1, got {hop}")
    check_engine(engine)
    if engine == "ray" and ray_address:
        check_reachable(ray_address)
    torch.set_flush_denormal(True)  # the recurrent path can crawl on denormals (DESIGN.md)
    predictor = Predictor.load(model_path, device, postprocess, redetect_every, detector,
                               precision)
    videos = find_videos(inputs, predictor.media_suffixes)
    output = ensure_writable_folder(Path(output), "the predictions")
    names = {}
    for video in videos:
        names.setdefault(video.stem, []).append(video)
    clashes = [stem for stem, paths in names.items() if len(paths) > 1]
    if clashes:
        raise AvstanError(f"{inputs}: several videos are named {clashes[0]!r}; their outputs "
                          "would collide, predict them separately")
    for stray in remove_stray_temporaries(output, list(names)):
        log(f"removed {stray.name}, a temporary file of an earlier run that was stopped")
    record = run_record(model_path, hop, postprocess, overlay, html, redetect_every, detector,
                        all_faces, precision)
    if not overwrite:
        existing = [output / f"{v.stem}{suffix}" for v in videos
                    for suffix in output_suffixes(overlay, html)
                    if output_exists(output / f"{v.stem}{suffix}")]
        if all_faces:  # the per-person files, and not the main face's
            existing = [path for v in videos for path in sorted(
                output.glob(f"{v.stem}.person*.csv")) + [
                output / f"{v.stem}{suffix}" for suffix in output_suffixes(overlay, html)[2:]
                if output_exists(output / f"{v.stem}{suffix}")]]
        held = read_run_record(output)
        if existing and held != record:
            by = (", written by a predict command with another model or settings"
                  if held is not None else "")
            raise AvstanError(f"{existing[0]}: exists{by}; pass --overwrite or choose "
                              "another --output folder")
        if existing:  # the same command, stopped before: resume it
            complete = [v for v in videos
                        if video_complete(output, v.stem, overlay, html, all_faces)]
            for video in complete:
                log(f"{video}: outputs complete, skipped (--overwrite redoes them)")
            videos = [v for v in videos if v not in complete]
    atomic_write_bytes(output / RUN_RECORD, json.dumps(record, indent=1).encode())
    try:
        done, failed = [], []
        if engine == "ray":
            settings = (str(model_path), device, postprocess, redetect_every, detector, precision)
            jobs = [(settings, video, output, hop, overlay, html, all_faces) for video in videos]
            bar = progress_bar(len(videos), "predicting", "video", enabled=progress)
            with RayRun(ray_address) as run:
                check_shared_folder(run, output)
                gpus = 1 if str(device).startswith("cuda") else 0
                for index, result in run.map_unordered(_predict_on_ray, jobs, num_gpus=gpus):
                    video = videos[index]
                    bar.update(1)
                    if isinstance(result, Exception):
                        failed.append((video, str(result)))
                        log(f"failed {video.name}: {result}")
                        continue
                    done += result
                    log(f"{video}: {len(result[0].times)} steps -> "
                        + ", ".join(p.csv_path.name for p in result))
            bar.close()
            return done, failed
        for video in videos:
            try:
                if all_faces:
                    people = predictor.predict_people(video, output, hop, progress, overlay, html)
                    done += people
                    log(f"{video}: {len(people)} people, {len(people[0].times)} steps -> "
                        + ", ".join(p.csv_path.name for p in people))
                    continue
                done.append(predictor.predict_video(video, output, hop, progress, overlay, html))
                log(f"{video}: {len(done[-1].times)} steps -> {done[-1].csv_path}")
            except AvstanError as error:
                failed.append((video, str(error)))
                log(f"failed {video.name}: {error}")
            except OSError as error:
                if error.errno in (errno.ENOSPC, errno.EDQUOT):
                    # the disk, not the video: stop here; what is finished is kept
                    kept = (f" (the {len(done)} finished are kept and skipped then)"
                            if done else "")
                    raise AvstanError(
                        f"{output}: no space left on the device while writing the outputs "
                        f"of {video.name}; free some space and run the same command "
                        f"again{kept}") from None
                if error.errno != errno.ENAMETOOLONG:
                    raise
                # this video's output names pass the file system's limit; the others may not
                reason = (f"{video}: its output file names are too long for the file system "
                          f"({error.filename or output}); rename the video shorter")
                failed.append((video, reason))
                log(f"failed {video.name}: {reason}")
        return done, failed
    finally:
        drop_unused_run_record(output, list(names))
