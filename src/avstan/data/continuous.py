"""Continuous recordings from a corpus of categorical utterances (RAVDESS, CREMA-D).

Acted corpora give one category per utterance of 2–5 s; the continuous models and the
AVEC scoring want long recordings whose label changes over time. ``avstan prepare
--continuous`` builds one recording per speaker:

1. **Blocks.** The speaker's utterances are grouped by category; each group is shuffled
   and cut into blocks of up to ``block_size`` utterances (the last block of a category
   may be shorter); the blocks are then shuffled. Both shuffles draw from one generator
   seeded by ``seed`` and the speaker's name, so a speaker's recording does not change
   when other speakers are added. Intensities may mix inside a block.
2. **Audio.** The utterances (decoded to 16 kHz mono, so stereo and 48 kHz files are
   downmixed and resampled) are concatenated in that order with ``gap`` seconds of digital
   silence between consecutive utterances (none before the first or after the last).
3. **Labels** at 10 Hz (``k / 10`` s up to the end): the point of the utterance that
   plays. A gap keeps the label of the utterance before it: the emotion is taken to last
   until the next utterance starts (raters' traces lag a change rather than anticipate
   it). Formally, utterance i owns ``[start_i, start_{i+1})``, the last one owns up to the
   end. ``prepare`` resamples this track onto its steps and keeps it as the gold track.

The files go to ``<store>/continuous/``: ``<speaker>.wav`` (16-bit PCM), ``<speaker>.csv``
(``time,valence,arousal``, the generic layout's label file) and ``<speaker>.segments.csv``
(which file plays when, with the settings in its first line), each written atomically. A
rerun with the same settings and files reuses them without decoding anything.

Only utterances with audio are used: RAVDESS's video-only files are left out, and where an
utterance exists both as an audio-only file and an audio-visual one, the audio-only file is
taken once.
"""

from __future__ import annotations

import math
import wave
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avstan.data.audio import SAMPLE_RATE, load_audio
from avstan.data.corpora import generic
from avstan.data.corpora.acted import LABEL_RATE
from avstan.data.corpora.base import AUDIO_SUFFIXES, RecordingSource
from avstan.data.corpora.common import read_lines
from avstan.errors import AvstanError
from avstan.io import atomic_path, atomic_write_bytes

FOLDER = "continuous"


MAX_GAP = 10.0  # s of silence between utterances: more is no longer one conversation


@dataclass(frozen=True)
class ContinuousConfig:
    block_size: int = 3  # utterances of one category in a row, at most
    gap: float = 0.5  # seconds of silence between consecutive utterances
    seed: int = 0  # the block order's seed

    def __post_init__(self) -> None:
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) \
                or self.block_size < 1:
            raise AvstanError(f"--block-size {self.block_size}: use 1 or more utterances")
        if not (math.isfinite(self.gap) and 0 <= self.gap <= MAX_GAP):
            raise AvstanError(f"--gap {self.gap:g}: use 0 to {MAX_GAP:g} seconds of silence "
                              "between utterances")

    def describe(self) -> str:
        return f"block_size={self.block_size} gap={self.gap:g} seed={self.seed}"


def plan_blocks(categories: Sequence[str], block_size: int, rng: np.random.Generator
                ) -> list[list[int]]:
    """Blocks of indices into ``categories``: each category's indices shuffled and cut into
    runs of up to ``block_size``, then the runs shuffled."""
    by_category: dict[str, list[int]] = defaultdict(list)
    for index, category in enumerate(categories):
        by_category[category].append(index)
    blocks: list[list[int]] = []
    for category in sorted(by_category):
        indices = [by_category[category][i] for i in rng.permutation(len(by_category[category]))]
        blocks += [indices[i:i + block_size] for i in range(0, len(indices), block_size)]
    return [blocks[i] for i in rng.permutation(len(blocks))]


def utterance_starts(durations: Sequence[float], gap: float) -> tuple[np.ndarray, float]:
    """Start of each utterance (s) when they follow each other with ``gap`` between, and
    the total length."""
    durations = np.asarray(durations, dtype=np.float64)
    starts = np.concatenate([[0.0], np.cumsum(durations[:-1] + gap)])
    return starts, float(durations.sum() + gap * (len(durations) - 1))


def continuous_labels(starts: np.ndarray, total: float, points: np.ndarray,
                      rate: float = LABEL_RATE) -> tuple[np.ndarray, np.ndarray]:
    """``times (M,)`` at ``k / rate`` up to ``total`` and ``values (M, 2)``: the point of
    the utterance that started last at or before each time (a gap keeps the label of the
    utterance before it)."""
    times = np.arange(int(np.floor(total * rate + 1e-9)) + 1) / rate
    owner = np.searchsorted(np.asarray(starts) - 1e-9, times, side="right") - 1
    return times, np.asarray(points, dtype=np.float64)[np.clip(owner, 0, None)]


def speaker_utterances(sources: Sequence[RecordingSource]) -> dict[str, list[RecordingSource]]:
    """``{speaker: utterances with audio, sorted by name}``, one file per utterance (an
    audio-only file before an audio-visual one of the same utterance)."""
    chosen: dict[tuple[str, str], RecordingSource] = {}
    for source in sorted(sources, key=lambda s: s.name):
        if "speaker" not in source.extra or "point" not in source.extra:
            raise AvstanError(f"{source.media}: --continuous needs a corpus of categorical "
                              "utterances; use --layout ravdess or --layout cremad")
        if not source.extra.get("has_audio", True):
            continue
        key = (source.extra["speaker"], source.extra.get("utterance", source.name))
        audio_only = source.media is not None and source.media.suffix.lower() in AUDIO_SUFFIXES
        if key not in chosen or (audio_only and chosen[key].media.suffix.lower()
                                 not in AUDIO_SUFFIXES):
            chosen[key] = source
    by_speaker: dict[str, list[RecordingSource]] = defaultdict(list)
    for (speaker, _), source in sorted(chosen.items()):
        by_speaker[speaker].append(source)
    return dict(by_speaker)


def _settings_line(config: ContinuousConfig) -> str:
    return f"# avstan continuous recording: {config.describe()}"


def _up_to_date(paths: dict[str, Path], config: ContinuousConfig, files: list[str]) -> bool:
    if not all(path.is_file() for path in paths.values()):
        return False
    lines = read_lines(paths["segments"])
    return bool(lines) and lines[0] == _settings_line(config) and \
        [line.split(",")[0] for line in lines[2:] if line.strip()] == files


def write_wav(path: Path, signal: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit PCM mono wav, atomically."""
    pcm = (np.clip(signal, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with atomic_path(path) as temporary:
        with wave.open(str(temporary), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(sample_rate)
            handle.writeframes(pcm.tobytes())


def build_speaker(speaker: str, utterances: list[RecordingSource], folder: Path,
                  config: ContinuousConfig) -> RecordingSource:
    """Write (or reuse) one speaker's continuous recording; the recording to prepare."""
    rng = np.random.default_rng([config.seed, zlib.crc32(speaker.encode())])
    order = [i for block in plan_blocks([u.extra["category"] for u in utterances],
                                        config.block_size, rng) for i in block]
    chosen = [utterances[i] for i in order]
    files = [str(u.extra.get("audio") or u.media) for u in chosen]
    paths = {"audio": folder / f"{speaker}.wav", "labels": folder / f"{speaker}.csv",
             "segments": folder / f"{speaker}.segments.csv"}
    if not _up_to_date(paths, config, files):
        signals = [load_audio(path) for path in files]
        durations = [signal.size / SAMPLE_RATE for signal in signals]
        starts, total = utterance_starts(durations, config.gap)
        points = np.array([u.extra["point"] for u in chosen])
        silence = np.zeros(int(round(config.gap * SAMPLE_RATE)), dtype=np.float32)
        pieces = [piece for signal in signals for piece in (silence, signal)][1:]
        times, values = continuous_labels(starts, total, points)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_wav(paths["audio"], np.concatenate(pieces))
            label_rows = [f"{t:.3f},{v:.4f},{a:.4f}\n"
                          for t, (v, a) in zip(times, values, strict=True)]
            atomic_write_bytes(paths["labels"],
                               ("time,valence,arousal\n" + "".join(label_rows)).encode())
            rows = [f"{file},{start:.4f},{start + duration:.4f},{u.extra['category']},"
                    f"{u.extra['intensity']:g},{u.extra['point'][0]:.4f},"
                    f"{u.extra['point'][1]:.4f}\n"
                    for file, start, duration, u in zip(files, starts, durations, chosen,
                                                                       strict=True)]
            atomic_write_bytes(paths["segments"], (
                _settings_line(config) + "\nfile,start,end,category,intensity,valence,"
                "arousal\n" + "".join(rows)).encode())
        except OSError as error:
            raise AvstanError(f"{folder}: cannot write the continuous recordings "
                              f"({error.strerror}); choose a writable output folder") from None
    return RecordingSource(name=speaker, partition=chosen[0].partition, media=paths["audio"],
                           read_labels=generic.read_labels,
                           extra={"labels": paths["labels"], "speaker": speaker})


def build_continuous(sources: Sequence[RecordingSource], folder: str | Path,
                     config: ContinuousConfig = ContinuousConfig(), log=print
                     ) -> list[RecordingSource]:
    """One continuous recording per speaker (module docstring), written to ``folder``."""
    folder = Path(folder)
    by_speaker = speaker_utterances(sources)
    if not by_speaker:
        raise AvstanError(f"{folder.parent}: no utterance with audio to build continuous "
                          "recordings from (video-only files have none)")
    built = []
    for speaker, utterances in by_speaker.items():
        built.append(build_speaker(speaker, utterances, folder, config))
    log(f"{folder}: {len(built)} continuous recordings ({config.describe()})")
    return built
