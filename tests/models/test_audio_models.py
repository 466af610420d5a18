"""Audio (lstm, lstm_ta) and audio-visual (av_sta) models: standardisation, the temporal
attention, the fusion's use of both inputs."""

import numpy as np
import pytest
import torch

from avstan.data.audio import standardise
from avstan.errors import AvstanError
from avstan.models import create_model
from avstan.models.audio import (
    AudioLSTMModel,
    FeatureStandardiser,
    FrameEncoder,
    TemporalAttention,
)

AUDIO = {"clip_length": 5, "audio_features": 7, "hidden": 8, "layers": 2}


def test_standardiser_equals_the_numpy_definition_with_nan_and_clipping():
    rng = np.random.default_rng(0)
    features = rng.normal(0, 50, (3, 5, 7)).astype(np.float32)
    features[0, 1, 2] = np.nan
    features[1, 2, 3] = 1e6  # far outside: must be clipped
    center, scale = rng.normal(size=7).astype(np.float32), rng.uniform(0.5, 20, 7).astype(
        np.float32)
    module = FeatureStandardiser(7, clip=4.0)
    module.set_statistics(center, scale)
    ours = module(torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(ours, standardise(features, center, scale, clip=4.0), rtol=1e-6)
    assert ours[0, 1, 2] == 0.0 and ours[1, 2, 3] == 4.0


def test_standardiser_refuses_bad_statistics():
    module = FeatureStandardiser(3)
    with pytest.raises(ValueError, match="3"):
        module.set_statistics(np.zeros(4), np.ones(4))
    with pytest.raises(ValueError, match="positive"):
        module.set_statistics(np.zeros(3), np.array([1.0, 0.0, 1.0]))


def test_standardisation_statistics_are_saved_with_the_weights():
    model = create_model("lstm_ta", **AUDIO)
    model.audio_standardiser.set_statistics(np.arange(7.0), np.full(7, 2.0))
    clone = create_model("lstm_ta", **AUDIO)
    clone.load_state_dict(model.state_dict())
    torch.testing.assert_close(clone.audio_standardiser.center, torch.arange(7.0))


def test_temporal_attention_weights_sum_to_one_and_uniform_is_the_identity():
    torch.manual_seed(0)
    attention = TemporalAttention(7, hidden=5)
    sequence = torch.randn(2, 6, 7)
    weighted, weights = attention(sequence)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))
    # The paper's A ⊙ S, rescaled by T: weights computed by hand from the MLP.
    scores = attention.score[2](torch.tanh(attention.score[0](sequence))).squeeze(-1)
    expected = torch.exp(scores) / torch.exp(scores).sum(dim=1, keepdim=True)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(weighted, sequence * expected.unsqueeze(-1) * 6)
    torch.nn.init.zeros_(attention.score[2].weight)
    weighted, weights = attention(sequence)
    torch.testing.assert_close(weighted, sequence)


def test_lstm_ta_with_uniform_attention_equals_lstm_with_the_same_weights():
    torch.manual_seed(0)
    with_attention = create_model("lstm_ta", **AUDIO).eval()
    plain = create_model("lstm", **AUDIO).eval()
    plain.load_state_dict(with_attention.state_dict(), strict=False)
    torch.nn.init.zeros_(with_attention.attention_branch.score[2].weight)
    audio = torch.randn(3, 5, 7)
    torch.testing.assert_close(with_attention(audio)["prediction"], plain(audio)["prediction"])


def test_attention_uniform_start_starts_lstm_ta_as_lstm():
    """At creation the weights are 1/T and the prediction is an lstm's with the same
    LSTM and output layers; the default (the paper's random MLP) is not uniform."""
    torch.manual_seed(0)
    uniform = create_model("lstm_ta", attention_uniform_start=True, **AUDIO).eval()
    plain = create_model("lstm", **AUDIO).eval()
    plain.load_state_dict(uniform.state_dict(), strict=False)
    audio = torch.randn(3, 5, 7)
    out = uniform(audio)
    torch.testing.assert_close(out["temporal_attention"], torch.full((3, 5), 0.2))
    torch.testing.assert_close(out["prediction"], plain(audio)["prediction"])
    default = create_model("lstm_ta", **AUDIO).eval()
    assert default(audio)["temporal_attention"].std() > 1e-3
    with pytest.raises(AvstanError, match="attention_uniform_start needs the temporal"):
        AudioLSTMModel(("valence",), 5, 7, 8, 2, False, 0, 0.5, 5.0,
                       attention_uniform_start=True)


def test_attention_pooling_equals_a_softmax_over_each_prefix_computed_step_by_step():
    """Z^S at step t = Σ_{s≤t} softmax(scores[:t+1])_s h_s, by a loop over t; the
    prediction reads the pooled state of the last step, and step t's only its past."""
    torch.manual_seed(0)
    model = create_model("lstm_ta", attention_pooling=True, dropout=0.0, **AUDIO)
    audio = torch.randn(3, 5, 7)
    sequence, _ = model.attention_branch(model.audio_standardiser(audio))
    hidden, _ = model.lstm(sequence)
    scores = model.pooling.score(hidden).squeeze(-1)
    expected = []
    for t in range(5):
        weights = torch.exp(scores[:, :t + 1]) / torch.exp(scores[:, :t + 1]).sum(1, True)
        expected.append((weights.unsqueeze(-1) * hidden[:, :t + 1]).sum(1))
    expected = torch.stack(expected, 1)
    out = model(audio)  # training: every step's prediction
    torch.testing.assert_close(out["step_predictions"], model.output(expected))
    torch.testing.assert_close(out["pooling_attention"], torch.softmax(scores, 1))
    model.eval()
    out = model(audio)
    torch.testing.assert_close(out["features"], expected[:, -1])
    torch.testing.assert_close(out["prediction"], model.output(expected[:, -1]))
    # A step's pooled state does not read later hidden states (the input attention, the
    # paper's, normalises over the whole clip, so the model as a whole does).
    later = hidden.clone()
    later[:, 3:] += 5.0
    torch.testing.assert_close(model.pooling(later)[0][:, :3], expected[:, :3])
    with pytest.raises(AvstanError, match="attention_pooling needs the temporal"):
        AudioLSTMModel(("valence",), 5, 7, 8, 2, False, 0, 0.5, 5.0, attention_pooling=True)


def frame_encoder_by_loops(encoder: FrameEncoder, sequence: np.ndarray) -> tuple:
    """FrameEncoder in numpy, one output frame and one step at a time."""
    batch, steps, _ = sequence.shape
    frames = sequence.reshape(batch, steps * encoder.frames, encoder.descriptors)
    for convolution in encoder.convolutions:
        weight = convolution.weight.detach().numpy()  # (C_out, C_in, width)
        bias = convolution.bias.detach().numpy()
        width = weight.shape[2]
        out = np.zeros((batch, frames.shape[1], weight.shape[0]), dtype=np.float64)
        for p in range(frames.shape[1]):
            out[:, p] = bias
            for k in range(width):
                source = p - (width - 1) + k  # frames before the clip are zeros
                if source >= 0:
                    out[:, p] += frames[:, source] @ weight[:, :, k].T
        frames = np.maximum(out, 0.0)
    first, tanh, last = encoder.score
    w1, b1 = first.weight.detach().numpy(), first.bias.detach().numpy()
    w2 = last.weight.detach().numpy()
    pooled = np.zeros((batch, steps, frames.shape[2]))
    weights = np.zeros((batch, steps, encoder.frames))
    for t in range(steps):
        block = frames[:, t * encoder.frames:(t + 1) * encoder.frames]  # (B, F, C)
        scores = (np.tanh(block @ w1.T + b1) @ w2.T)[..., 0]
        alpha = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
        weights[:, t] = alpha
        pooled[:, t] = (alpha[..., None] * block).sum(axis=1)
    return pooled, weights


def test_frame_encoder_equals_causal_convolutions_and_a_softmax_per_step_by_loops():
    torch.manual_seed(0)
    encoder = FrameEncoder(descriptors=3, frames=4, channels=5, hidden=6)
    sequence = torch.randn(2, 6, 12)  # 6 steps of 4 frames of 3 descriptors
    pooled, weights = encoder(sequence)
    expected, expected_weights = frame_encoder_by_loops(encoder, sequence.double().numpy())
    np.testing.assert_allclose(pooled.detach().numpy(), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(weights.detach().numpy(), expected_weights, rtol=1e-4,
                               atol=1e-6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 6))
    # causal: later steps' frames leave the earlier steps' vectors as they are
    changed = sequence.clone()
    changed[:, 4:] += 3.0
    torch.testing.assert_close(encoder(changed)[0][:, :4], pooled[:, :4])
    assert not torch.allclose(encoder(changed)[0][:, 4:], pooled[:, 4:])


def test_frame_descriptors_feeds_the_lstm_one_pooled_vector_per_step():
    torch.manual_seed(0)
    model = create_model("lstm", frame_descriptors=7, frame_channels=4,
                         **{**AUDIO, "audio_features": 21}).eval()
    audio = torch.randn(3, 5, 21)  # steps of 3 frames of 7 descriptors
    steps, weights = model.frame_encoder(model.audio_standardiser(audio))
    hidden, _ = model.lstm(steps)
    out = model(audio)
    torch.testing.assert_close(out["features"], hidden[:, -1])
    torch.testing.assert_close(out["frame_attention"], weights[:, -1])
    assert model.lstm.input_size == 4
    with pytest.raises(AvstanError, match="frame_descriptors=4 does not divide the 21"):
        create_model("lstm", frame_descriptors=4, **{**AUDIO, "audio_features": 21})


def test_audio_features_are_the_last_lstm_hidden_state():
    model = create_model("lstm", **AUDIO).eval()
    audio = torch.randn(2, 5, 7)
    hidden, _ = model.lstm(model.audio_standardiser(audio))
    out = model(audio)
    torch.testing.assert_close(out["features"], hidden[:, -1])
    torch.testing.assert_close(out["prediction"], model.output(hidden[:, -1]))


TRUNK = {"trunk_channels": [4, 8, 8, 8], "fc_hidden": 8}


def tiny_fusion(video=None, **extra):
    torch.manual_seed(0)
    video = video or {"encoder_channels": [4, 8], "decoder_channels": [8, 4], **TRUNK}
    return create_model("av_sta", crop_size=16, clip_length=4, audio_features=7,
                        audio={"hidden": 8, "layers": 2}, video=video, **extra).eval()


def test_fusion_concatenates_both_branches_features():
    model = tiny_fusion()
    clip, audio = torch.rand(2, 3, 4, 16, 16), torch.randn(2, 4, 7)
    out = model(clip=clip, audio=audio)
    z = torch.cat([model.audio_branch(audio)["features"], model.video_branch(clip)["features"]],
                  dim=1)
    torch.testing.assert_close(out["prediction"], model.output(model.fusion(z)))
    assert out["attention"].shape == (2, 4, 16, 16)
    assert out["temporal_attention"].shape == (2, 4)
    # Each input matters.
    assert not torch.allclose(out["prediction"], model(clip=clip, audio=-audio)["prediction"])
    assert not torch.allclose(out["prediction"],
                              model(clip=clip.flip(-1), audio=audio)["prediction"])


def test_fusion_over_a_linear_skip_branch_trains_what_it_uses():
    """The branch's linear path is an output (like its output layer), unused by the fusion:
    frozen, and every trainable parameter gets a gradient."""
    torch.manual_seed(0)
    model = create_model("av_sta", crop_size=16, clip_length=4, audio_features=7,
                         audio={"hidden": 8, "layers": 2, "linear_skip": True},
                         video={"encoder_channels": [4, 8], "decoder_channels": [8, 4], **TRUNK})
    assert not any(p.requires_grad for p in model.audio_branch.linear_path.parameters())
    model(clip=torch.rand(2, 3, 4, 16, 16), audio=torch.randn(2, 4, 7))["prediction"].sum(
    ).backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing


def test_fusion_over_a_cnn3d_branch_and_a_branch_without_a_trunk():
    assert "attention" not in tiny_fusion(TRUNK, video_model="cnn3d")(
        clip=torch.rand(1, 3, 4, 16, 16), audio=torch.randn(1, 4, 7))
    with pytest.raises(AvstanError, match="model.options.video_model 'cnn2d': use sta3d or cnn3d"):
        create_model("av_sta", crop_size=16, clip_length=4, video_model="cnn2d")


def test_fusion_can_start_as_exactly_its_video_branch():
    model = tiny_fusion(fusion_hidden=8)  # = the video branch's fc_hidden
    model.start_as_video_branch()
    clip = torch.rand(3, 3, 4, 16, 16)
    video = model.video_branch(clip)["prediction"]
    for audio in (torch.randn(3, 4, 7), 100 * torch.randn(3, 4, 7)):
        torch.testing.assert_close(model(clip=clip, audio=audio)["prediction"], video)
    # The audio weights are zero but trainable: a gradient reaches them.
    model.train()
    model(clip=clip, audio=torch.randn(3, 4, 7))["prediction"].sum().backward()
    assert model.fusion[0].weight.grad[:, :8].abs().sum() > 0
    with pytest.raises(AvstanError, match="fusion_hidden = 8"):
        tiny_fusion(fusion_hidden=5).start_as_video_branch()
