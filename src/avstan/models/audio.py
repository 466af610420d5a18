"""Audio models of the MM 2018 paper (Sec. 2.1); the fusion is in ``fusion.py``.

Audio input is a clip of T steps of acoustic features, ``audio (B, T, D)`` (eGeMAPS
functionals, D = 88, on the same step timeline as the face crops). Every model first
standardises its input with statistics of the training partition, kept as buffers so they
travel with the weights (``FeatureStandardiser``), then:

    lstm_ta   temporal attention: λ_t = MLP(S_t), A = softmax over the T steps,
              Y = T · A ⊙ S (so uniform attention is the identity), then a 4-layer LSTM
              whose last hidden state is Z^S; dropout → FC → outputs.
    lstm      the same without the attention (Table 1 of the MM paper, first row).

Every model names the batch entries it reads in ``input_names`` ("audio"), and returns the
same dict as the video models: ``prediction (B, K)``, ``features (B, F)``, plus
``temporal_attention (B, T)`` where there is one.

Options for the low-data regime (real speech with a few speakers, see docs/benchmarks.md):
``recording_standardisation`` standardises each recording's features with its own
statistics before the training-set standardiser (the data code does it, reading this
flag: a clip alone cannot know its recording); ``input_noise`` adds Gaussian noise of that
standard deviation to the standardised features in training; ``lstm_dropout`` is dropout
between the LSTM layers. In training the models also return ``step_predictions (B, T, K)``,
the output layer on every step's hidden state, for a loss on every step of the clip
(``training.loss_every_step``). ``linear_skip`` adds a linear path: the output is a linear
map of the current step's standardised features (those at the clip's last step; on every
step for ``step_predictions``) plus the LSTM branch's output, so the model is a linear
regressor on the step's features, as the AVEC SVR baseline is, with the LSTM learning what
the context adds to it. The path reads the features before the temporal attention and
without dropout, and stays out of ``features`` (Z^S), which the fusion model reads.
``lookahead`` (steps, default 0) makes the model predict step ``e`` from the clip ending
at ``e + lookahead``: the data code cuts the clips so (``data.clips``), offline prediction
reads that far ahead, and a stream writes each step that many steps late. The eGeMAPS
window ends at its step, so its centre lies half a window (2 s) before it; reading ahead
lines the features up with the labels they describe. ``attention_uniform_start``
(``lstm_ta``) zeroes the attention MLP's last layer at creation, so the attention starts
uniform, which is the identity: ``lstm_ta`` starts as ``lstm`` and departs from it only as
far as training pulls it. With the MLP's random start (the default, as in the paper) the
input steps start rescaled by about 0.4–2.3× (on real speech; training takes them back
towards uniform there, ``benchmarks/speech_attention.py``).
``attention_pooling`` (``lstm_ta``) adds a second attention, over the LSTM's hidden
states (attention pooling, as in speech emotion recognition since Mirsamadi et al., 2017):
β_s = softmax_s(MLP(h_s)) over the steps up to t, and Z^S at step t is Σ_{s≤t} β_s h_s
instead of h_t, so a step's prediction can read the hidden state of any step before it,
such as the step whose 4 s window is centred on the label when the model reads ahead. Its
weights at the clip's last step come out as ``pooling_attention (B, T)``.
``frame_descriptors`` = L > 0 reads each step's D features as D / L frames of L
descriptors (the eGeMAPS low-level descriptors, L = 25, of the step's 10 ms frames, as
``benchmarks/real_speech.py --lld`` stores them) instead of one vector of functionals: a
``FrameEncoder`` (two causal convolutions along the clip's frames, ``frame_channels`` wide,
then an attention pooling over each step's own frames, a weighted mean, whose weights at
the clip's last step come out as ``frame_attention (B, F)``) turns them into one vector per
step for the temporal attention and the LSTM, End2You-style: the model learns its own
summary of the frames where the functionals are fixed ones. ``linear_skip`` still reads
the step's standardised frames.

Choices the paper leaves open, fixed here: the attention MLP is D → ``attention_hidden``
→ 1 with tanh; the LSTM has ``hidden`` units per layer (the paper gives neither); dropout
0.5 before the output layer, as between the paper's fully connected layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from avstan.errors import AvstanError
from avstan.models.init import xavier_uniform_init
from avstan.models.options import (
    ClipLength,
    Count,
    Depth,
    Dropout,
    FeatureBound,
    FeatureCount,
    NoiseLevel,
    Width,
)
from avstan.models.registry import register_model
from avstan.targets import LABEL_NAMES

EGEMAPS_SIZE = 88


class FeatureStandardiser(nn.Module):
    """z = clamp((x - center) / scale, -clip, clip), with NaN features set to 0 (the center).

    ``center`` and ``scale`` are buffers, fitted on the training partition by the training
    code (``set_statistics``) and saved with the model. Clipping keeps a feature whose
    training spread was tiny (eGeMAPS' ``*_stddevNorm`` near a zero mean) from reaching
    |z| ~ 1e5 on unseen speech.
    """

    def __init__(self, size: int, clip: float = 5.0) -> None:
        super().__init__()
        self.register_buffer("center", torch.zeros(size))
        self.register_buffer("scale", torch.ones(size))
        self.clip = float(clip)

    def set_statistics(self, center: np.ndarray | Tensor, scale: np.ndarray | Tensor) -> None:
        center = torch.as_tensor(np.asarray(center), dtype=self.center.dtype)
        scale = torch.as_tensor(np.asarray(scale), dtype=self.scale.dtype)
        if center.shape != self.center.shape or scale.shape != self.scale.shape:
            raise ValueError(f"statistics for {tuple(center.shape)} features, the model "
                             f"takes {tuple(self.center.shape)}")
        if not torch.isfinite(center).all() or not (scale > 0).all():
            raise ValueError("standardisation statistics must be finite with positive scales")
        self.center.copy_(center)
        self.scale.copy_(scale)

    def forward(self, features: Tensor) -> Tensor:
        z = (features - self.center) / self.scale
        return torch.nan_to_num(z, nan=0.0).clamp(-self.clip, self.clip)


def attention_score(size: int, hidden: int) -> nn.Sequential:
    """The scoring MLP of every attention here: size → hidden → 1 with tanh. No bias on
    the last layer: a constant added to every score leaves the softmax as is."""
    return nn.Sequential(nn.Linear(size, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))


class TemporalAttention(nn.Module):
    """λ_t = MLP(S_t); A = softmax_t(λ); Y = T · A ⊙ S. Returns (Y, A (B, T))."""

    def __init__(self, size: int, hidden: int = 64) -> None:
        super().__init__()
        self.score = attention_score(size, hidden)

    def forward(self, sequence: Tensor) -> tuple[Tensor, Tensor]:
        weights = torch.softmax(self.score(sequence).squeeze(-1), dim=1)
        return sequence * weights.unsqueeze(-1) * sequence.shape[1], weights


class AttentionPooling(nn.Module):
    """β_{t,s} = softmax over s ≤ t of MLP(h_s); returns (Σ_{s≤t} β_{t,s} h_s (B, T, H),
    β (B, T, T)): the pooled state of every prefix of the clip, so each step's prediction
    reads only its own past, as the LSTM's hidden state does."""

    def __init__(self, size: int, hidden: int = 64) -> None:
        super().__init__()
        self.score = attention_score(size, hidden)

    def forward(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        steps = hidden.shape[1]
        scores = self.score(hidden).squeeze(-1)  # (B, T)
        future = torch.ones(steps, steps, dtype=torch.bool, device=hidden.device).triu(1)
        weights = torch.softmax(scores.unsqueeze(1).masked_fill(future, float("-inf")), dim=-1)
        return weights @ hidden, weights


class FrameEncoder(nn.Module):
    """Steps of frames → one vector per step: ``(B, T, F·L)`` read as F frames of L
    descriptors, two causal 1-D convolutions (width 5, ReLU) along the clip's T·F frames,
    then an attention pooling over each step's own F frames (α = softmax_F(MLP(h)), the step
    vector is Σ α h). Returns ((B, T, C), α (B, T, F)). The convolutions keep PyTorch's
    default start (``models.init`` draws Xavier weights for the papers' layer types only;
    the numbers of docs/benchmarks.md "Round 6" were measured so)."""

    def __init__(self, descriptors: int, frames: int, channels: int, hidden: int,
                 width: int = 5) -> None:
        super().__init__()
        self.descriptors, self.frames, self.width = descriptors, frames, width
        self.convolutions = nn.ModuleList([nn.Conv1d(descriptors, channels, width),
                                           nn.Conv1d(channels, channels, width)])
        self.score = attention_score(channels, hidden)

    def forward(self, sequence: Tensor) -> tuple[Tensor, Tensor]:
        batch, steps = sequence.shape[:2]
        frames = sequence.reshape(batch, steps * self.frames, self.descriptors).transpose(1, 2)
        for convolution in self.convolutions:  # left padding: a frame reads only its past
            frames = torch.relu(convolution(nn.functional.pad(frames, (self.width - 1, 0))))
        frames = frames.transpose(1, 2).reshape(batch, steps, self.frames, -1)
        weights = torch.softmax(self.score(frames).squeeze(-1), dim=-1)  # (B, T, F)
        return (weights.unsqueeze(-1) * frames).sum(dim=2), weights


class AudioLSTMModel(nn.Module):
    """Standardiser → [temporal attention] → LSTM stack → last hidden state → dropout → FC."""

    input_names = ("audio",)

    def __init__(self, targets: Sequence[str], clip_length: int, audio_features: int,
                 hidden: int, layers: int, attention: bool, attention_hidden: int,
                 dropout: float, feature_clip: float, recording_standardisation: bool = False,
                 input_noise: float = 0.0, lstm_dropout: float = 0.0,
                 linear_skip: bool = False, lookahead: int = 0,
                 attention_uniform_start: bool = False,
                 attention_pooling: bool = False, frame_descriptors: int = 0,
                 frame_channels: int = 32) -> None:
        super().__init__()
        if isinstance(lookahead, bool) or int(lookahead) != lookahead or lookahead < 0:
            raise AvstanError(f"lookahead must be a whole number of steps >= 0, got {lookahead!r}")
        self.targets = tuple(targets)
        self.clip_length = clip_length
        self.lookahead = int(lookahead)
        self.audio_features = audio_features
        self.audio_standardiser = FeatureStandardiser(audio_features, feature_clip)
        self.recording_standardisation = bool(recording_standardisation)
        self.input_noise = float(input_noise)
        self.frame_encoder = None
        step_size = audio_features
        if frame_descriptors:
            if audio_features % frame_descriptors:
                raise AvstanError(f"frame_descriptors={frame_descriptors} does not divide the "
                                  f"{audio_features} audio features of a step")
            self.frame_encoder = FrameEncoder(frame_descriptors,
                                              audio_features // frame_descriptors,
                                              frame_channels, attention_hidden or 64)
            step_size = frame_channels
        self.attention_branch = TemporalAttention(step_size, attention_hidden) \
            if attention else None
        self.attention_uniform_start = bool(attention_uniform_start)
        if self.attention_uniform_start and self.attention_branch is None:
            raise AvstanError("attention_uniform_start needs the temporal attention (lstm_ta)")
        if attention_pooling and self.attention_branch is None:
            raise AvstanError("attention_pooling needs the temporal attention (lstm_ta)")
        self.lstm = nn.LSTM(step_size, hidden, num_layers=layers, batch_first=True,
                            dropout=lstm_dropout if layers > 1 else 0.0)
        self.pooling = AttentionPooling(hidden, attention_hidden) if attention_pooling else None
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden, len(targets))
        # the linear path of linear_skip: standardised step features (D) → targets (K)
        self.linear_path = nn.Linear(audio_features, len(targets)) if linear_skip else None
        self.feature_size = hidden

    def standardise(self, audio: Tensor) -> Tensor:
        """The standardised features ``(B, T, D)``, with the training input noise."""
        sequence = self.audio_standardiser(audio)
        if self.training and self.input_noise > 0:
            sequence = sequence + self.input_noise * torch.randn_like(sequence)
        return sequence

    def encode(self, audio: Tensor) -> dict[str, Tensor]:
        """Z^S (B, hidden) and, with attention, the weights (B, T)."""
        return self._encode_standardised(self.standardise(audio))

    def _encode_standardised(self, sequence: Tensor) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        if self.frame_encoder is not None:
            sequence, frame_attention = self.frame_encoder(sequence)
            out["frame_attention"] = frame_attention[:, -1]
        if self.attention_branch is not None:
            sequence, out["temporal_attention"] = self.attention_branch(sequence)
        hidden, _ = self.lstm(sequence)
        if self.pooling is not None:
            hidden, pooling = self.pooling(hidden)
            out["pooling_attention"] = pooling[:, -1]
        out["features"] = hidden[:, -1]
        if self.training:
            out["step_hidden"] = hidden
        return out

    def forward(self, audio: Tensor) -> dict[str, Tensor]:
        sequence = self.standardise(audio)  # (B, T, D)
        out = self._encode_standardised(sequence)
        out["prediction"] = self.output(self.dropout(out["features"]))
        if "step_hidden" in out:
            out["step_predictions"] = self.output(self.dropout(out.pop("step_hidden")))
        if self.linear_path is not None:
            linear = self.linear_path(sequence)  # (B, T, K)
            out["prediction"] = out["prediction"] + linear[:, -1]
            if "step_predictions" in out:
                out["step_predictions"] = out["step_predictions"] + linear
        return out


def _audio_model(targets, clip_length, audio_features, hidden, layers, attention,
                 attention_hidden, dropout, feature_clip, **levers) -> AudioLSTMModel:
    model = AudioLSTMModel(targets, clip_length, audio_features, hidden, layers, attention,
                           attention_hidden, dropout, feature_clip, **levers)
    xavier_uniform_init(model)
    if model.linear_path is not None:
        # Zero: the model starts as its LSTM branch alone and the linear path grows from
        # there. Xavier weights on 88 features with |z| up to 5 start far off (training MSE
        # 2.5 instead of 0.3 on real speech) and were still coming down after 12 epochs.
        nn.init.zeros_(model.linear_path.weight)
        nn.init.zeros_(model.linear_path.bias)
    if model.attention_uniform_start:
        # λ_t = 0 for every step: softmax gives 1/T and Y = T · A ⊙ S = S (see the docstring)
        nn.init.zeros_(model.attention_branch.score[-1].weight)
    for name, parameter in model.lstm.named_parameters():
        if name.startswith("weight"):
            for gate in parameter.data.chunk(4, dim=0):  # i, f, g, o: Xavier per gate
                nn.init.xavier_uniform_(gate)
        else:
            nn.init.zeros_(parameter)
            if name.startswith("bias_ih"):
                parameter.data.chunk(4)[1].fill_(1.0)  # forget gate open at the start
    return model


@register_model
def lstm_ta(clip_length: ClipLength = 16, targets: Sequence[str] = LABEL_NAMES,
            audio_features: FeatureCount = EGEMAPS_SIZE, hidden: Width = 64,
            layers: Depth = 4, attention_hidden: Width = 64, dropout: Dropout = 0.5,
            feature_clip: FeatureBound = 5.0, recording_standardisation: bool = False,
            input_noise: NoiseLevel = 0.0, lstm_dropout: Dropout = 0.0,
            linear_skip: bool = False, lookahead: Count = 0,
            attention_uniform_start: bool = False,
            attention_pooling: bool = False, frame_descriptors: Count = 0,
            frame_channels: Width = 32) -> AudioLSTMModel:
    """LSTM-RNN + TA: temporal attention over eGeMAPS steps, then a 4-layer LSTM."""
    return _audio_model(targets, clip_length, audio_features, hidden, layers, True,
                        attention_hidden, dropout, feature_clip,
                        recording_standardisation=recording_standardisation,
                        input_noise=input_noise, lstm_dropout=lstm_dropout,
                        linear_skip=linear_skip, lookahead=lookahead,
                        attention_uniform_start=attention_uniform_start,
                        attention_pooling=attention_pooling,
                        frame_descriptors=frame_descriptors, frame_channels=frame_channels)


@register_model
def lstm(clip_length: ClipLength = 16, targets: Sequence[str] = LABEL_NAMES,
         audio_features: FeatureCount = EGEMAPS_SIZE, hidden: Width = 64, layers: Depth = 4,
         dropout: Dropout = 0.5, feature_clip: FeatureBound = 5.0,
         recording_standardisation: bool = False, input_noise: NoiseLevel = 0.0,
         lstm_dropout: Dropout = 0.0, linear_skip: bool = False,
         lookahead: Count = 0, frame_descriptors: Count = 0,
         frame_channels: Width = 32) -> AudioLSTMModel:
    """LSTM-RNN: the audio model without temporal attention (MM paper, Table 1)."""
    return _audio_model(targets, clip_length, audio_features, hidden, layers, False, 0,
                        dropout, feature_clip,
                        recording_standardisation=recording_standardisation,
                        input_noise=input_noise, lstm_dropout=lstm_dropout,
                        linear_skip=linear_skip, lookahead=lookahead,
                        frame_descriptors=frame_descriptors, frame_channels=frame_channels)
