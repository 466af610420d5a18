"""Synthetic recordings and corpora, and how small the emotion's part of the pixels is.

:func:`generate_recording` makes one recording (frames, labels, salient mask and, with
audio, the voice's eGeMAPS functionals); :func:`generate_corpus` writes every recording of
a configuration into a recording store (resumable, optionally with the voices as wavs);
:func:`signal_variance_fraction` measures how much of the pixel variance each factor
accounts for.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from avstan.data.audio import egemaps_functionals
from avstan.data.store import PARTITIONS, Recording, RecordingStore
from avstan.data.synthetic.config import SyntheticConfig
from avstan.data.synthetic.processes import Processes, recording_seed, sample_processes
from avstan.data.synthetic.rendering import render, render_float, salient_mask
from avstan.data.synthetic.voice import SAMPLE_RATE as VOICE_SAMPLE_RATE
from avstan.data.synthetic.voice import synthesize_voice, write_wav
from avstan.errors import AvstanError
from avstan.progress import progress_bar

__all__ = [
    "corpus_plan",
    "generate_corpus",
    "generate_recording",
    "render_voice",
    "signal_variance_fraction",
    "step_times",
]


# --------------------------------------------------------------------------- recordings


def step_times(config: SyntheticConfig) -> np.ndarray:
    """Times (N,) in seconds of a recording's steps: ``k / step_rate``."""
    return np.arange(config.steps_per_recording) / config.step_rate


def render_voice(config: SyntheticConfig, processes: Processes) -> np.ndarray:
    """The recording's voice (L,) float32 at 16 kHz, covering its N / step_rate seconds."""
    return synthesize_voice(processes.labels, step_times(config), processes.voice_seed,
                            noise=config.voice_noise, arousal_cue=config.voice_arousal_cue,
                            valence_cue=config.voice_valence_cue,
                            duration=config.steps_per_recording / config.step_rate)


def _make_recording(config: SyntheticConfig, name: str, partition: str,
                    seed: int | np.random.SeedSequence,
                    want_voice: bool = False) -> tuple[Recording, np.ndarray | None]:
    if partition not in PARTITIONS:
        raise AvstanError(f"partition must be one of {PARTITIONS}, got {partition!r}")
    processes = sample_processes(config, seed)
    frames, mask = render(config, processes)
    n = config.steps_per_recording
    times = step_times(config)
    voice, features = None, None
    if config.audio or want_voice:
        voice = render_voice(config, processes)
    if config.audio:
        features = egemaps_functionals(voice, VOICE_SAMPLE_RATE, times,
                                       config.audio_window_seconds,
                                       source=f"synthetic recording {name}")
    seed_text = seed if isinstance(seed, int) else f"entropy={seed.entropy}"
    rec = Recording(
        name=name, frames=frames, times=times, face_found=np.ones(n, dtype=bool),
        labels=processes.labels, step_rate=config.step_rate, partition=partition,
        corpus="synthetic", source=f"synthetic:{config.name}:seed={seed_text}",
        salient_mask=mask, audio_features=features,
    )
    rec.validate()
    return rec, voice


def generate_recording(config: SyntheticConfig, name: str, partition: str,
                       seed: int | np.random.SeedSequence) -> Recording:
    """One synthetic recording, deterministic in ``seed``: frames, labels, salient mask and,
    with ``config.audio``, the voice's eGeMAPS functionals (N, 88) as ``audio_features``."""
    return _make_recording(config, name, partition, seed)[0]


def corpus_plan(config: SyntheticConfig) -> list[tuple[str, str, int]]:
    """(name, partition, seed) of every recording of the corpus, in generation order."""
    counts = {"train": config.num_train, "devel": config.num_devel, "test": config.num_test}
    return [(f"{part}_{i:03d}", part, recording_seed(config, part, i))
            for part in PARTITIONS for i in range(counts[part])]


def generate_corpus(root: str | Path, config: SyntheticConfig | None = None,
                    progress: bool = True, wav_folder: str | Path | None = None,
                    ) -> RecordingStore:
    """Write the corpus into a recording store at ``root`` and return the store.

    Resumable: recordings already complete in the store are skipped. A store made with a
    different configuration is refused (mixing two corpora in one folder would silently
    give wrong results).

    ``wav_folder``: also write each recording's voice there as ``<name>.wav`` (16 kHz,
    16-bit mono); a wav missing for a recording already in the store is rendered again.
    """

    config = config or SyntheticConfig()
    root = Path(root)
    settings = asdict(config)
    if (root / "manifest.json").exists():
        existing = RecordingStore.open(root)
        previous = existing.attrs.get("synthetic_config")
        if previous is not None and previous != settings:
            diff = sorted(k for k in set(previous) | set(settings)
                          if previous.get(k) != settings.get(k))
            raise AvstanError(f"{root}: holds a synthetic corpus made with a different "
                              f"configuration (differs in {', '.join(diff)}); use another "
                              "folder or delete this one")
    store = RecordingStore.create(root, corpus="synthetic", synthetic_config=settings)
    plan = corpus_plan(config)
    todo = [item for item in plan if not store.is_complete(item[0])]
    with progress_bar(len(plan), "synthetic corpus", "rec", initial=len(plan) - len(todo),
                      enabled=progress) as bar:
        for name, partition, seed in todo:
            recording, voice = _make_recording(config, name, partition, seed,
                                               want_voice=wav_folder is not None)
            if wav_folder is not None:
                write_wav(Path(wav_folder) / f"{name}.wav", voice, VOICE_SAMPLE_RATE)
            store.add(recording)
            bar.update(1)
    if wav_folder is not None:
        for name, _, seed in plan:
            path = Path(wav_folder) / f"{name}.wav"
            if not path.exists():
                write_wav(path, render_voice(config, sample_processes(config, seed)),
                          VOICE_SAMPLE_RATE)
    return store


# --------------------------------------------------------------------------- measurement


def signal_variance_fraction(config: SyntheticConfig,
                             seed: int | np.random.SeedSequence = 0) -> dict[str, float]:
    """How much of the pixel variance each factor accounts for, in one recording.

    The recording is rendered once as is and once per factor with that factor switched
    to neutral (everything else, including the sensor noise, identical); the fraction is
    ``var(real - counterfactual) / var(real)`` over all pixels, channels and frames.

    Returns a dict with
        ``signal``: labels set to 0 (neutral face) — the emotion's share;
        ``decoy``: decoy process set to 0 (constant mid intensity);
        ``head_motion``, ``flicker``, ``background``, ``eyes`` (blinks and gaze):
            the other distractors, each switched off;
        ``signal_outside_mask``: the emotion's variance outside the salient mask, as a
            fraction of its total (0 by construction unless ``eye_arousal`` > 0).
    """
    p = sample_processes(config, seed)
    real = render_float(config, p)
    denom = float(real.var())
    n = config.steps_per_recording

    def fraction(q: Processes) -> tuple[float, np.ndarray]:
        diff = real - render_float(config, q)
        return float(diff.var()) / denom, diff

    signal, diff = fraction(replace(p, labels=np.zeros_like(p.labels)))
    mask = salient_mask(config, p)
    energy = (diff.astype(np.float64) ** 2).sum(-1)
    total = float(energy.sum())
    result = {"signal": signal}
    result["decoy"] = fraction(replace(p, decoy=np.zeros_like(p.decoy)))[0]
    still = replace(p, head_xy=np.zeros_like(p.head_xy), head_scale=np.ones(n),
                    head_roll=np.zeros(n))
    result["head_motion"] = fraction(still)[0]
    result["flicker"] = fraction(replace(p, brightness=np.zeros(n), contrast=np.ones(n)))[0]
    flat = np.broadcast_to(p.background_texture.mean((0, 1)), p.background_texture.shape)
    result["background"] = fraction(replace(p, background_texture=flat))[0]
    result["eyes"] = fraction(replace(p, blink=np.zeros(n), gaze=np.zeros_like(p.gaze)))[0]
    result["signal_outside_mask"] = float(energy[~mask].sum()) / total if total > 0 else 0.0
    return result
