"""The ``avstan`` command line: thin argument parsing over the importable stages.

``build_parser`` is the table of sub-commands; each sets its handler (``run_<command>``),
a few lines that call the package. Nothing in the package imports this module.

Errors a user can cause (bad files, configs, paths) print one line and exit 2; an
interrupted run exits 130 and resumes when the same command is run again.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from avstan import __version__
from avstan.data.corpora.base import VIDEO_SUFFIXES
from avstan.data.detectors import DEFAULT_DETECTOR, DETECTORS
from avstan.errors import AvstanError
from avstan.io import exclusive_output
from avstan.memory import fix_mmap_threshold

EXIT_PARTIAL_FAILURE = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool whose reader left
# Commands that work through long videos: glibc's mmap threshold is fixed for them
# (avstan.memory; training is ~15 % slower with it, so it keeps glibc's own rule).
MEMORY_FLAT_COMMANDS = ("prepare", "predict")


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config value, e.g. --set training.lr=3e-4 "
                             "(repeatable; dotted keys, YAML values)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avstan",
        description="Continuous valence/arousal recognition from face video with "
                    "spatiotemporal attention (Lee et al. 2018).")
    parser.add_argument("--version", action="version", version=f"avstan {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo", help="train the papers' video models on a synthetic corpus and compare them",
        description="Generate a synthetic face corpus with a synthetic voice, train the "
                    "papers' video, audio and audio-visual models on it (cnn2d, cnn3d, sta3d, "
                    "lstm, lstm_ta, av_sta), and write the ablation tables with plots (about "
                    "12-15 minutes on 2 CPU cores).")
    demo.set_defaults(handler=run_demo)
    demo.add_argument("--output", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--preset", default="default",
                      help="synthetic corpus preset: default or hard (default: default)")
    demo.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                      help="models to train (default: cnn2d cnn3d sta3d lstm lstm_ta av_sta)")
    demo.add_argument("--device", default="cpu", help="device for evaluation (cpu, cuda)")
    _add_overrides(demo)

    prepare = commands.add_parser(
        "prepare", help="turn a corpus (or a folder of videos) into a recording store",
        description="Sample each video at the step rate, detect, track and align the face "
                    "(dlib HOG + 68 landmarks; eyes and nose to a fixed template), resample "
                    "the labels onto the same timeline and write the recording store. "
                    "Audio (the video's own track, a separate audio file, or audio files on "
                    "their own) becomes eGeMAPS features over a window ending at each step. "
                    "Resumable: a rerun skips recordings already prepared.")
    prepare.set_defaults(handler=run_prepare)
    prepare.add_argument("corpus", help="corpus folder")
    prepare.add_argument("output", help="recording store folder to write")
    prepare.add_argument("--layout", default="auto",
                         help="corpus layout: auto, generic, recola, avec2017, affwild2, "
                              "afewva, ravdess, cremad, mead; face images: fer2013, affectnet, "
                              "images (a folder with labels.csv) (default: auto-detect)")
    prepare.add_argument("--crop-size", type=int, default=96, help="crop size S (default 96)")
    prepare.add_argument("--step-rate", type=float, default=4.0,
                         help="steps per second (default 4, as the papers)")
    prepare.add_argument("--workers", type=int, default=None,
                         help="parallel processes (default: all cores)")
    add_engine_arguments(prepare)
    prepare.add_argument("--preview", action="store_true",
                         help="also write a contact sheet of crops with landmarks per "
                              "recording to OUTPUT/preview/")
    prepare.add_argument("--audio-window", type=float, default=4.0, metavar="SECONDS",
                         help="eGeMAPS window ending at each step (default 4; AVEC 2017 used "
                              "4 for arousal, 6 for valence)")
    prepare.add_argument("--no-audio", action="store_true",
                         help="no audio features (video only; faster)")
    prepare.add_argument("--redetect-every", type=int, default=4, metavar="K",
                         help="search for the face every K steps and follow its landmarks in "
                              "between (again at once when the fit looks wrong; a face that "
                              "disappears is reported at most K-1 steps late); 1: search "
                              "every step (default 4, once a second at 4 steps/s)")
    prepare.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR,
                         help="face detector: yunet (a CNN; finds small, turned and badly lit "
                              "faces) or hog (dlib's frontal detector, as in the papers' "
                              "preprocessing; with --redetect-every 1, avstan's original "
                              "face stage) (default yunet)")
    prepare.add_argument("--landmarks", choices=("corpus", "detect"), default="corpus",
                         help="corpus: align from the corpus's own 68 landmarks where it ships "
                              "them (AFEW-VA), detect elsewhere; detect: always detect and fit "
                              "(default corpus)")
    prepare.add_argument("--continuous", action="store_true",
                         help="acted corpora (ravdess, cremad): join each speaker's utterances "
                              "into one continuous recording (blocks of same-category "
                              "utterances, silence between, labels at 10 Hz), written to "
                              "OUTPUT/continuous/; without it each utterance is a recording")
    prepare.add_argument("--block-size", type=int, default=3, metavar="N",
                         help="with --continuous: utterances of one category in a row, at "
                              "most (default 3)")
    prepare.add_argument("--gap", type=float, default=0.5, metavar="SECONDS",
                         help="with --continuous: silence between utterances (default 0.5)")
    prepare.add_argument("--block-seed", type=int, default=0, metavar="SEED",
                         help="with --continuous: seed of the block order (default 0)")

    synth = commands.add_parser(
        "synthesize", help="write a synthetic corpus into a recording store",
        description="Write the synthetic face corpus (train/devel/test) into a recording store.")
    synth.set_defaults(handler=run_synthesize)
    synth.add_argument("output", help="folder of the recording store")
    synth.add_argument("--preset", default="default", help="default or hard")
    synth.add_argument("--crop-size", type=int, default=None, help="frame size S (pixels)")
    synth.add_argument("--seed", type=int, default=None, help="corpus seed")
    synth.add_argument("--wav", action="store_true",
                       help="also write each recording's voice to OUTPUT/audio/NAME.wav "
                            "(16 kHz, 16-bit mono)")
    synth.add_argument("--no-audio", action="store_true",
                       help="no voice and no audio features (faster; video models only)")

    train = commands.add_parser(
        "train", help="train a model from a YAML experiment config",
        description="Train one experiment (a YAML file, see configs/); resumes an interrupted "
                    "run in the same output folder.")
    train.set_defaults(handler=run_train)
    train.add_argument("--config", required=True, help="experiment YAML file")
    train.add_argument("--output", default=None, help="output folder (overrides the config)")
    train.add_argument("--store", default=None, help="recording store (overrides data.store)")
    train.add_argument("--restart", action="store_true",
                       help="start over instead of resuming from the last checkpoint")
    train.add_argument("--devices", default=None,
                       help="devices per node for Lightning, e.g. 1, 4 or auto")
    train.add_argument("--num-nodes", type=int, default=None, help="number of machines")
    train.add_argument("--strategy", default=None, help="Lightning strategy, e.g. ddp")
    train.add_argument("--accelerator", default=None, help="cpu, gpu, auto")
    train.add_argument("--precision", default=None,
                       help="Lightning precision, e.g. bf16-mixed on a GPU (default: the "
                            "config's training.precision, 32-true)")
    _add_overrides(train)

    baseline = commands.add_parser(
        "baseline", help="the AVEC 2017 audio baseline (SVR on eGeMAPS) on a recording store",
        description="Standardise the eGeMAPS features on train, fit a linear SVR per target "
                    "with its complexity chosen on devel CCC, and score a partition raw and "
                    "after the AVEC post-processing chain, written like `avstan evaluate`.")
    baseline.set_defaults(handler=run_baseline)
    baseline.add_argument("store", help="recording store folder with audio features")
    baseline.add_argument("output", help="folder for metrics, predictions, plots, report")
    baseline.add_argument("--partition", default="test", help="train, devel or test")
    baseline.add_argument("--complexities", type=float, nargs="+", default=None, metavar="C",
                          help="SVR complexity grid (default 1e-5 ... 1)")
    baseline.add_argument("--time-shift", action="store_true",
                          help="add the time-shift step to the post-processing chain")
    baseline.add_argument("--lookahead", type=int, default=0, metavar="STEPS",
                          help="predict each step from the features STEPS steps later, as an "
                               "audio model with that lookahead reads them (default 0: the "
                               "challenge's baseline)")

    evaluate = commands.add_parser(
        "evaluate", help="score a trained model on a partition of a recording store",
        description="Predict every step of a partition and report RMSE, CC and CCC "
                    "(concatenated, AVEC-style, and per-recording mean), raw and after the "
                    "AVEC post-processing chain (median smoothing, centring, scaling; each "
                    "kept only if it helps on devel) fitted on the devel partition.")
    evaluate.set_defaults(handler=run_evaluate)
    evaluate.add_argument("model", help="model.pt written by avstan train")
    evaluate.add_argument("store", help="recording store folder")
    evaluate.add_argument("--partition", default="test", help="train, devel or test")
    evaluate.add_argument("--output", default=None,
                          help="folder for metrics, predictions CSV and plots")
    evaluate.add_argument("--device", default="cpu", help="cpu or cuda")
    evaluate.add_argument("--no-postprocess", action="store_true",
                          help="score raw predictions only (no AVEC chain fitted on devel)")
    evaluate.add_argument("--time-shift", action="store_true",
                          help="let the post-processing chain also choose a time shift")

    predict = commands.add_parser(
        "predict", help="predict valence and arousal over time for any video",
        description="Run a trained model on a video (or every video of a folder): the same "
                    "face sampling and alignment as prepare, sliding-window prediction, the "
                    "post-processing chain stored in the model. Writes <name>.csv (time, "
                    "valence, arousal, face_found) and <name>.png per video; on request an "
                    "attention overlay MP4 and an HTML page. With --stream, reads frames as "
                    "they come and prints one CSV line per step instead.")
    predict.set_defaults(handler=run_predict)
    predict.add_argument("model", help="model.pt written by avstan train, or the name of a "
                                       "packaged model (`avstan models`); leave it out to use "
                                       "the packaged real-face model, frame2d-fer2013")
    predict.add_argument("input", nargs="?", help="a video file or a folder of videos")
    predict.add_argument("--overlay", action="store_true",
                         help="also write <name>.overlay.mp4: the video with the attention map "
                              "over the face and the current values drawn")
    predict.add_argument("--html", action="store_true",
                         help="also write <name>.html: a self-contained page playing the video "
                              "(the overlay if made) beside the curves, in sync")
    predict.add_argument("--stream", metavar="SOURCE",
                         help="predict frames as they come from SOURCE: '-' (a pipe on "
                              "standard input), a file still being written, or a device / "
                              "FFmpeg input with --input-format; one CSV line per step on "
                              "standard output (median smoothing is not applied: not causal)")
    predict.add_argument("--input-format", metavar="FORMAT",
                         help="FFmpeg input format of --stream, e.g. v4l2 for a camera")
    predict.add_argument("--input-option", action="append", default=[], metavar="KEY=VALUE",
                         help="FFmpeg option for --stream, e.g. video_size=640x480 (repeatable)")
    predict.add_argument("--idle-timeout", type=float, default=5.0, metavar="SECONDS",
                         help="--stream of a file: end when it has not grown for this long "
                              "(default 5)")
    predict.add_argument("--output", default="predictions", help="output folder")
    predict.add_argument("--hop", type=int, default=1,
                         help="predict every k-th step and interpolate between (default 1)")
    predict.add_argument("--redetect-every", type=int, metavar="K",
                         help="search for the face every K-th step and follow its landmarks "
                              "in between (default: as the model's training store was "
                              "prepared; 1 searches every step)")
    add_engine_arguments(predict)
    predict.add_argument("--all-faces", action="store_true",
                         help="follow every person in the video (a stable identity from a "
                              "face descriptor, kept across cuts) and write one curve per "
                              "person, NAME.person<k>.csv (default: the main face only)")
    predict.add_argument("--detector", choices=DETECTORS,
                         help="face detector, yunet or hog (default: as the model's training "
                              "store was prepared)")
    predict.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    predict.add_argument("--no-postprocess", action="store_true",
                         help="raw predictions, without the model's post-processing chain")
    predict.add_argument("--device", default="cpu", help="cpu or cuda")
    predict.add_argument("--precision", default="32-true",
                         choices=("32-true", "bf16-mixed", "16-mixed"),
                         help="the model's arithmetic: 32-true (default), bf16-mixed (CPU or "
                              "GPU), 16-mixed (GPU)")

    export = commands.add_parser(
        "export", help="export a trained model to ONNX or TorchScript",
        description="Write the model as ONNX (run it with onnxruntime) or TorchScript (run it "
                    "with torch.jit.load), checked against PyTorch on random clips; targets, "
                    "crop size, step rate and post-processing travel inside as JSON.")
    export.set_defaults(handler=run_export)
    export.add_argument("model", help="model.pt written by avstan train")
    export.add_argument("--format", choices=["onnx", "exported", "torchscript"],
                        default="onnx", help="onnx (default), exported (a torch.export "
                        "program, .pt2) or torchscript (deprecated by PyTorch)")
    export.add_argument("--output", default=None,
                        help="file to write (default: next to the model, .onnx, .pt2 or "
                             ".ts)")

    reproduce = commands.add_parser(
        "reproduce", help="train and score every row of a table of the papers",
        description="Train every row of a paper table with the papers' settings "
                    "(configs/paper/), fit the AVEC chain on devel, score, and write a "
                    "report with the published numbers beside ours. Resumable.")
    reproduce.set_defaults(handler=run_reproduce)
    reproduce.add_argument("--table", required=True,
                           help="icassp-table1 or mm-table2 (mm-table1/3 need audio models)")
    reproduce.add_argument("--corpus", required=True, help="prepared recording store")
    reproduce.add_argument("--output", default="runs/reproduce", help="output folder")
    reproduce.add_argument("--partition", default="devel",
                           help="partition to score (default devel, as the papers)")
    _add_overrides(reproduce)

    models = commands.add_parser("models", help="list the registered models and their options, "
                                 "and the trained models shipped with avstan",
                                 description="List the registered models and their options.")
    models.set_defaults(handler=run_models)
    models.add_argument("name", nargs="?", help="show one model's options")
    return parser


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="where the files are processed: local (a process pool on this "
                             "machine) or ray (Ray tasks; pip install 'avstan[ray]') "
                             "(default local)")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="with --engine ray: the cluster, HOST:PORT, ray://HOST:PORT or "
                             "auto (default: a Ray instance on this machine for the run); the "
                             "output folder must be on storage every node sees")


def run_demo(args: argparse.Namespace) -> int:
    from avstan.apply.real_clips import predict_real_clips
    from avstan.experiments.demo import DEMO_MODELS, DemoAddition, run_demo

    def real_clips(folder: Path) -> DemoAddition:
        result = predict_real_clips(folder, log=lambda line: None)
        return DemoAddition("The packaged real-face model on real video", result.table,
                            result.html)

    with exclusive_output(args.output, "the demo", "demo"):
        run_demo(args.output, args.preset, tuple(args.models or DEMO_MODELS), args.overrides,
                 args.device, final_step=real_clips)
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from avstan.data.continuous import ContinuousConfig
    from avstan.data.corpora.images import IMAGE_LAYOUTS, looks_like_image_corpus
    from avstan.data.prepare import PrepareConfig, prepare_folder

    config = PrepareConfig(crop_size=args.crop_size, step_rate=args.step_rate,
                           audio_window=None if args.no_audio else args.audio_window,
                           redetect_every=args.redetect_every, detector=args.detector,
                           landmarks=args.landmarks)
    if args.layout in IMAGE_LAYOUTS or (args.layout == "auto" and Path(args.corpus).is_dir()
                                        and looks_like_image_corpus(Path(args.corpus))):
        from avstan.data.images import prepare_image_folder

        if args.engine != "local" or args.continuous:
            raise AvstanError("--engine ray and --continuous are for recordings; face image "
                              "corpora are prepared by the local pool (--workers)")
        with exclusive_output(args.output, "the image store", "prepare"):
            images = prepare_image_folder(args.corpus, args.output, config, args.layout,
                                          args.workers, preview=args.preview)
        return EXIT_PARTIAL_FAILURE if images.failed_shards or images.failed_images else 0
    continuous = ContinuousConfig(args.block_size, args.gap, args.block_seed) \
        if args.continuous else None
    with exclusive_output(args.output, "the recording store", "prepare"):
        summary = prepare_folder(args.corpus, args.output, config, args.layout, args.workers,
                                 preview=args.preview, continuous=continuous,
                                 engine=args.engine, ray_address=args.ray_address)
    return EXIT_PARTIAL_FAILURE if summary.failed else 0


def run_synthesize(args: argparse.Namespace) -> int:
    from avstan.data.synthetic import generate_corpus, preset_config

    config = preset_config(args.preset, crop_size=args.crop_size, seed=args.seed,
                           audio=False if args.no_audio else None)
    store = generate_corpus(args.output, config,
                            wav_folder=f"{args.output}/audio" if args.wav else None)
    print(f"{args.output}: {len(store.names())} recordings "
          f"({', '.join(f'{p} {len(store.names(p))}' for p in ('train', 'devel', 'test'))})")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from avstan.experiments.calibrated_training import (
        describe_chains,
        resolve_init_branches,
        train_and_calibrate,
    )
    from avstan.training.config import load_config

    flags = {"output": args.output, "data.store": args.store, "training.devices": args.devices,
             "training.num_nodes": args.num_nodes, "training.strategy": args.strategy,
             "training.accelerator": args.accelerator, "training.precision": args.precision}
    overrides = [*args.overrides, *(f"{k}={v}" for k, v in flags.items() if v is not None)]
    config = load_config(args.config, overrides)
    resolve_init_branches(config)
    from avstan.models import model_arguments

    model_arguments(config.model.name)  # an unknown model: one line before any folder exists
    if not config.data.store:
        raise AvstanError(f"{args.config}: data.store is not set; name the recording store "
                          "in the config (data: {store: runs/corpus}) or pass --store")
    # one lock for a distributed run: its other processes (Lightning's launched ranks,
    # torchrun's) run this command too, into the folder their first process holds
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0)
    held = (exclusive_output(config.output, "the training output", "train") if rank == 0
            else contextlib.nullcontext())
    with held:
        run = train_and_calibrate(config, restart=args.restart)
    if config.training.keep == "last_epoch":
        score = run.result.best_val_ccc
        print(f"{run.model_path}: the last of {run.result.epochs} epochs kept"
              + (f", devel CCC {score:.3f}" if math.isfinite(score) else
                 " (no devel partition: no post-processing fitted; evaluate it with "
                 "--no-postprocess)"))
    else:
        print(f"{run.model_path}: best devel CCC {run.result.best_val_ccc:.3f} "
              f"after {run.result.epochs} epochs")
    if run.chains is not None:
        fitted = any(c.fitted for c in run.chains.values())
        print(("post-processing fitted on devel and saved in the model: " if fitted else
               "post-processing saved in the model: ")
              + describe_chains(run.chains))
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    from avstan.evaluation.baseline import COMPLEXITIES, run_baseline
    from avstan.evaluation.postprocess import DEFAULT_SHIFTS
    from avstan.evaluation.reports import metrics_markdown

    with exclusive_output(args.output, "the baseline", "baseline"):
        evaluation, fitted = run_baseline(args.store, args.output, args.partition,
                                          complexities=args.complexities or COMPLEXITIES,
                                          shifts=DEFAULT_SHIFTS if args.time_shift else None,
                                          lookahead=args.lookahead)
    print("complexity chosen on devel: " + ", ".join(
        f"{t} C={c:g} (devel CCC {fitted.devel_ccc[t][c]:.3f})"
        for t, c in fitted.complexity.items()))
    print(metrics_markdown(evaluation))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from avstan.evaluation.evaluate import evaluate_model_file
    from avstan.evaluation.postprocess import DEFAULT_SHIFTS
    from avstan.evaluation.reports import metrics_markdown

    held = (exclusive_output(args.output, "the evaluation", "evaluate") if args.output
            else contextlib.nullcontext())
    with held:
        evaluation = evaluate_model_file(args.model, args.store, args.partition, args.output,
                                         args.device, postprocess=not args.no_postprocess,
                                         shifts=DEFAULT_SHIFTS if args.time_shift else None)
    print(metrics_markdown(evaluation))
    return 0


def model_and_input(model: str, media: str | None, stream: str | None
                    ) -> tuple[str, str | None]:
    """``avstan predict [MODEL] INPUT``: the model file and the input. One argument that is
    not a model file (a video or a folder) is the input, with the packaged default model;
    a packaged model's name stands for its file."""
    from avstan.models.packaged import DEFAULT_PACKAGED_MODEL, is_packaged_name, packaged_model_path

    if media is None and stream is None and not is_packaged_name(model) \
            and Path(model).suffix.lower() not in (".pt", ".ckpt") \
            and (Path(model).is_dir() or Path(model).suffix.lower() in VIDEO_SUFFIXES):
        model, media = DEFAULT_PACKAGED_MODEL, model
    if is_packaged_name(model):
        model = str(packaged_model_path(model))
    return model, media


def run_predict(args: argparse.Namespace) -> int:
    args.model, args.input = model_and_input(args.model, args.input, args.stream)
    if args.stream is not None:
        from avstan.apply.stream import parse_input_options, stream_predict

        if args.input or args.overlay or args.html or args.hop != 1 or args.all_faces:
            raise AvstanError("--stream takes no INPUT, --overlay, --html, --hop or "
                              "--all-faces; it prints one CSV line per step")
        stream_predict(args.model, args.stream, input_format=args.input_format,
                       options=parse_input_options(args.input_option), device=args.device,
                       postprocess=not args.no_postprocess, idle_timeout=args.idle_timeout,
                       redetect_every=args.redetect_every, detector=args.detector)
        return 0
    from avstan.apply.predict import predict_videos

    if args.input is None:
        raise AvstanError("predict needs a video file or folder (or --stream SOURCE)")
    with exclusive_output(args.output, "the predictions", "predict"):
        done, failed = predict_videos(args.model, args.input, args.output, args.device,
                                      args.hop, args.overwrite, not args.no_postprocess,
                                      overlay=args.overlay, html=args.html,
                                      redetect_every=args.redetect_every,
                                      detector=args.detector, all_faces=args.all_faces,
                                      engine=args.engine, ray_address=args.ray_address,
                                      precision=args.precision)
    print(f"predicted {len(done)}, failed {len(failed)}")
    return EXIT_PARTIAL_FAILURE if failed else 0


def run_export(args: argparse.Namespace) -> int:
    from avstan.apply.export import export_model

    print(export_model(args.model, args.output, args.format))
    return 0


def run_reproduce(args: argparse.Namespace) -> int:
    from avstan.experiments.reproduce import reproduce_table

    with exclusive_output(Path(args.output) / args.table, "the reproduction", "reproduce"):
        report = reproduce_table(args.table, args.corpus, Path(args.output) / args.table,
                                 args.partition, args.overrides)
    print(f"report: {report}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    from avstan.models import list_models, model_arguments
    from avstan.models.packaged import PACKAGED_MODELS, packaged_model_path

    for name in [args.name] if args.name else list_models():
        options = ", ".join(f"{k}={v!r}" for k, v in model_arguments(name).items())
        print(f"{name}: {options}")
    if not args.name:
        print("\npackaged trained models (avstan predict [NAME] VIDEO; docs/models.md):")
        for packaged in PACKAGED_MODELS.values():
            try:
                where = str(packaged_model_path(packaged.name))
            except AvstanError as error:
                where = f"MISSING: {error}"
            print(f"{packaged.name}: {packaged.summary}; reproduce with configs/"
                  f"{packaged.config}.yaml; file {where}")
    return 0


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    # Warnings a user should act on (e.g. a recording skipped for lack of audio) read as
    # one line naming the thing, like the errors, not as a source location.
    return f"avstan: warning: {message}\n"


def _terminate_as_interrupt(signal_number: int, frame) -> None:
    """SIGTERM (``kill``, a job scheduler, a container stopping) ends avstan as Ctrl-C does:
    one line, the work written so far kept, the same command resumes."""
    raise KeyboardInterrupt


def handle_sigterm_as_ctrl_c() -> None:
    """Install :func:`_terminate_as_interrupt` for SIGTERM, unless the caller chose
    another disposition for it (an ignored SIGTERM stays ignored), and only in the main
    thread (where Python can install handlers)."""
    import signal
    import threading

    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = _one_line_warning
    handle_sigterm_as_ctrl_c()
    if args.command in MEMORY_FLAT_COMMANDS:
        fix_mmap_threshold()  # peak memory flat in a video's length (avstan.memory)
    try:
        return args.handler(args)
    except AvstanError as error:
        print(f"avstan: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:
        # whoever read the output went away (`avstan predict … | head -2`): stop quietly,
        # as Unix tools do; standard output now leads nowhere, so that the interpreter's
        # last flush of it does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # Any write may meet a full disk; every write is atomic, so nothing written before
        # is lost and the same command resumes once there is space.
        where = f"writing {error.filename}" if error.filename else "writing"
        print(f"avstan: error: no space left on the device ({where}); free some space and "
              "run the same command again", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("avstan: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
