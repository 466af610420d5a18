"""The audio-visual fusion of the MM 2018 paper (Sec. 2.3): ``av_sta``.

    av_sta    Z = concat(Z^S, Z^I) of the audio branch (lstm_ta) and the video branch
              (sta3d by default), the features before each branch's last layer,
              → FC → ReLU → dropout 0.5 → FC → outputs.

It reads ``input_names = ("clip", "audio")`` and returns the dict of the video models:
``prediction (B, K)``, ``features (B, F)``, the video branch's ``attention (B, T, S, S)``
and the audio branch's ``temporal_attention (B, T)`` where they have them. The branches
are registered models built by name, so a trained ``lstm_ta`` and ``sta3d`` load into
them as they are (``training.init_branches``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from avstan.errors import AvstanError
from avstan.models.audio import EGEMAPS_SIZE, AudioLSTMModel
from avstan.models.init import xavier_uniform_init
from avstan.models.options import (
    ClipLength,
    CropSize,
    Dropout,
    FeatureCount,
    FusedVideoModel,
    Width,
)
from avstan.models.registry import create_model, register_model
from avstan.targets import LABEL_NAMES


class AudioVisualFusion(nn.Module):
    """concat(Z^S, Z^I) → FC → ReLU → dropout → FC (the MM paper's late fusion)."""

    input_names = ("clip", "audio")

    def __init__(self, audio_branch: AudioLSTMModel, video_branch: nn.Module,
                 targets: Sequence[str], hidden: int, dropout: float) -> None:
        super().__init__()
        self.audio_branch = audio_branch
        self.video_branch = video_branch
        self.targets = tuple(targets)
        self.clip_length = video_branch.clip_length
        self.crop_size = video_branch.crop_size
        self.audio_features = audio_branch.audio_features
        self.audio_standardiser = audio_branch.audio_standardiser
        self.recording_standardisation = audio_branch.recording_standardisation
        if audio_branch.lookahead:
            raise AvstanError(f"av_sta: the audio branch's lookahead "
                              f"({audio_branch.lookahead} steps) is not supported by the "
                              "fusion, which reads the face and the sound of the same clip; "
                              "leave model.options.audio.lookahead out")
        self.lookahead = 0
        video_size = video_branch.trunk.head.output.in_features
        # The branches' own output layers (and the audio branch's linear path) are kept (so
        # trained branch models load as they are) but unused: frozen, so nothing without a
        # gradient is in the optimiser or DDP.
        audio_branch.output.requires_grad_(False)
        if audio_branch.linear_path is not None:  # linear_skip: also an output of the branch
            audio_branch.linear_path.requires_grad_(False)
        video_branch.trunk.head.output.requires_grad_(False)
        self.fusion = nn.Sequential(nn.Linear(audio_branch.feature_size + video_size, hidden),
                                    nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.output = nn.Linear(hidden, len(targets))

    @property
    def attention_branch(self) -> nn.Module | None:
        """The video branch's spatiotemporal attention (its own learning rate, if set)."""
        return getattr(self.video_branch, "attention_branch", None)

    @torch.no_grad()
    def start_as_video_branch(self) -> None:
        """Set the fusion layers so the model predicts exactly what its (trained) video
        branch predicts, with zero weight on the audio features: training then adds audio
        only where it lowers the loss. Needs ``fusion_hidden`` equal to the video branch's
        feature size (its ``fc_hidden``); Z^I is post-ReLU, so an identity block passes it
        through the fusion's ReLU unchanged."""
        first, video_head = self.fusion[0], self.video_branch.trunk.head.output
        audio_size = self.audio_branch.feature_size
        if first.out_features != video_head.in_features:
            raise AvstanError(f"av_sta: starting as the video branch needs fusion_hidden = "
                              f"{video_head.in_features} (the video features), got "
                              f"{first.out_features}")
        first.weight.zero_()
        first.weight[:, audio_size:] = torch.eye(video_head.in_features)
        first.bias.zero_()
        self.output.weight.copy_(video_head.weight)
        self.output.bias.copy_(video_head.bias)

    def forward(self, clip: Tensor, audio: Tensor) -> dict[str, Tensor]:
        audio_out = self.audio_branch.encode(audio)
        video_out = self.video_branch(clip)
        features = self.fusion(torch.cat([audio_out["features"], video_out["features"]], dim=1))
        out = {"prediction": self.output(features), "features": features}
        for key in ("attention",):
            if key in video_out:
                out[key] = video_out[key]
        if "temporal_attention" in audio_out:
            out["temporal_attention"] = audio_out["temporal_attention"]
        return out


@register_model
def av_sta(crop_size: CropSize = 96, clip_length: ClipLength = 16,
           targets: Sequence[str] = LABEL_NAMES, audio_features: FeatureCount = EGEMAPS_SIZE,
           audio: dict[str, Any] | None = None, video_model: FusedVideoModel = "sta3d",
           video: dict[str, Any] | None = None, fusion_hidden: Width = 128,
           dropout: Dropout = 0.5) -> AudioVisualFusion:
    """LSTM-RNN + TA + 3D-CNN + STA: the MM paper's audio-visual fusion.

    ``audio`` holds options of the ``lstm_ta`` branch (hidden, layers, ...), ``video`` those
    of the ``video_model`` branch (encoder_channels, pooled_size, ...). To start from two
    trained branches (the paper's late fusion), set ``training.init_branches`` in the
    experiment config; the branch options must then match the trained models'.
    """
    audio_branch = create_model("lstm_ta", clip_length=clip_length, targets=targets,
                                audio_features=audio_features, **(audio or {}))
    video_branch = create_model(video_model, crop_size=crop_size, clip_length=clip_length,
                                targets=targets, **(video or {}))
    if not hasattr(video_branch, "trunk"):
        raise AvstanError(f"av_sta: video_model {video_model!r} has no 3D-CNN trunk to fuse; "
                          "use sta3d or cnn3d")
    model = AudioVisualFusion(audio_branch, video_branch, targets, fusion_hidden, dropout)
    xavier_uniform_init(model.fusion)
    xavier_uniform_init(model.output)
    return model
