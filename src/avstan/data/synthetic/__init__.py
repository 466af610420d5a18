"""A synthetic face-video corpus whose emotion lives in a small, known part of the frame.

Each recording is a sequence of drawn faces (``crop_size`` × ``crop_size`` RGB, one frame
per step at ``step_rate`` steps/s). Two hidden, independent, smooth random processes in
[-1, 1] — valence and arousal — drive the face:

* **valence** bends the mouth (smile ↔ frown), widens it a little, and tilts the brows
  (inner ends down when negative, the "angry/sad" frown);
* **arousal** opens the mouth and raises both brows.

Everything else in the frame is a *distractor*: label-independent, each from its own
random stream, and together much stronger than the emotion, so that a model has to find
where to look. The distractors and why each is there:

* **head motion** — smooth translation, scale jitter and a little roll of the whole head:
  real crops are never perfectly aligned, and a model must track the mouth, not a pixel;
* **flicker** — global brightness and contrast changes: lighting changes are the largest
  pixel variance in real video and say nothing about emotion;
* **moving background** — a smooth noise texture plus a grating, drifting behind the head:
  clutter with temporal structure, so "whatever moves" is not a cue;
* **blinks and gaze shifts** — the eyes move a lot, right next to the brows, and mean
  nothing here (as in real faces, where they are only weakly tied to valence/arousal);
* **sensor noise** — independent Gaussian noise per pixel and channel;
* **decoy patch** — a disc fixed in the frame, behind the person (a lamp or a screen in
  the room; placed away from mouth and brows, where it is well visible), whose intensity
  follows a random process with *the same smoothness and distribution as the labels*:
  temporally it looks exactly like an emotion signal, so only the spatial location tells
  it apart;
* **identity** — skin, hair and iris colour, face width and eye spacing vary per
  recording, so a model cannot memorise one face.

The ground-truth salient mask (per frame, ``(N, S, S)`` bool) covers the mouth and the two
brows over their whole range of motion (boxes in face coordinates, dilated by one pixel)
and follows the head; it never includes the decoy. By construction the labels change
pixels only inside it: rendering the same recording with the labels set to 0 (neutral)
differs from the real rendering nowhere outside the mask (see
:func:`signal_variance_fraction`, which reports how small the emotional part of the pixel
variance is).

The recording also speaks: :mod:`avstan.data.synthetic.voice` renders a voice-like 16 kHz
track whose pitch, loudness and speaking rate follow arousal and whose formants and
spectral tilt follow valence (weaker), with a random speaker and background noise per
recording; its eGeMAPS functionals (88 per step, a window ending at each step) are stored
as ``audio_features``. Audio alone is informative about arousal but not sufficient, and
weaker about valence (see that module).

The generator is two-stage so that such counterfactual renderings are possible:
:func:`sample_processes` draws every random process of a recording (labels and
distractors, each from its own child of the recording's ``SeedSequence``), and
:func:`render` / :func:`render_float` turn them into frames deterministically. Replacing
one field of :class:`Processes` (``dataclasses.replace``) and rendering again changes
only that factor.

The package, one job per module:

* :mod:`~avstan.data.synthetic.config`: :class:`SyntheticConfig` (its checks, and reading
  it from a dict) and the named :data:`PRESETS`;
* :mod:`~avstan.data.synthetic.processes`: the random processes of a recording
  (:func:`sample_processes`, :func:`recording_seed`);
* :mod:`~avstan.data.synthetic.rendering`: frames and the salient mask from the processes
  (:func:`render`, :func:`render_float`, :func:`salient_mask`);
* :mod:`~avstan.data.synthetic.voice`: the voice;
* :mod:`~avstan.data.synthetic.corpus`: recordings, the corpus in a recording store
  (:func:`generate_recording`, :func:`generate_corpus`) and
  :func:`signal_variance_fraction`.
"""

from __future__ import annotations

from avstan.data.synthetic.config import PRESETS, SyntheticConfig, preset_config
from avstan.data.synthetic.corpus import (
    corpus_plan,
    generate_corpus,
    generate_recording,
    render_voice,
    signal_variance_fraction,
    step_times,
)
from avstan.data.synthetic.processes import (
    Identity,
    Processes,
    recording_seed,
    sample_processes,
)
from avstan.data.synthetic.rendering import render, render_float, salient_mask

__all__ = [
    "PRESETS",
    "Identity",
    "Processes",
    "SyntheticConfig",
    "corpus_plan",
    "generate_corpus",
    "generate_recording",
    "recording_seed",
    "render",
    "render_float",
    "render_voice",
    "salient_mask",
    "sample_processes",
    "preset_config",
    "signal_variance_fraction",
    "step_times",
]
