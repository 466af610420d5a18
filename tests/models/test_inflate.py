"""Starting clip models from a frame model (issue 31): each step against a direct
computation of what it must equal."""

import pytest
import torch
import torch.nn.functional as F

from avstan.models import create_model
from avstan.models.frame import to_grey
from avstan.models.inflate import (
    fold_batch_norm,
    grey_to_rgb,
    inflate_conv_weight,
    init_from_frame_model,
)
from avstan.models.video import INPUT_MEAN, INPUT_SCALE


def trained_like_frame_model(grey=True, channels=(4, 8, 8, 8)):
    """A frame2d whose batch norms hold running statistics (as after training)."""
    torch.manual_seed(0)
    frame = create_model("frame2d", crop_size=16, channels=list(channels), fc_hidden=8,
                         grey=grey)
    for module in frame.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
    return frame.eval()


def test_an_inflated_kernel_on_a_static_clip_gives_the_2d_output_inside_the_clip():
    torch.manual_seed(1)
    weight, bias = torch.randn(5, 3, 3, 3), torch.randn(5)
    frame = torch.randn(2, 3, 12, 12)
    static = frame.unsqueeze(2).repeat(1, 1, 6, 1, 1)  # (B, 3, T, H, W), the same frame
    out3d = F.conv3d(static, inflate_conv_weight(weight, 3), bias, padding=1)
    out2d = F.conv2d(frame, weight, bias, padding=1)
    for t in range(1, 5):  # frames whose temporal neighbours lie inside the clip
        torch.testing.assert_close(out3d[:, :, t], out2d, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out3d[:, :, 0], out2d, atol=1e-3)  # zero padding at the ends


def test_a_folded_batch_norm_equals_the_convolution_then_the_norm():
    torch.manual_seed(2)
    conv = torch.nn.Conv2d(3, 6, 3, padding=1, bias=False)
    norm = torch.nn.BatchNorm2d(6).eval()
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.2, 3)
    norm.weight.data.uniform_(0.5, 2)
    norm.bias.data.uniform_(-1, 1)
    x = torch.randn(2, 3, 9, 9)
    weight, bias = fold_batch_norm(conv.weight, None, norm)
    with torch.no_grad():
        torch.testing.assert_close(F.conv2d(x, weight, bias, padding=1), norm(conv(x)),
                                   rtol=1e-5, atol=1e-5)


def test_a_grey_kernel_read_as_rgb_equals_it_on_the_luminance():
    torch.manual_seed(3)
    weight = torch.randn(4, 1, 3, 3)
    rgb = torch.rand(2, 3, 10, 10)
    normalised = (rgb - INPUT_MEAN) / INPUT_SCALE  # the clip models' normalisation
    grey = (to_grey(rgb) - INPUT_MEAN) / INPUT_SCALE  # frame2d's
    torch.testing.assert_close(F.conv2d(normalised, grey_to_rgb(weight), padding=1),
                               F.conv2d(grey, weight, padding=1), rtol=1e-5, atol=1e-5)


def frame_first_stage(frame, rgb):
    """frame2d's first convolution and batch norm on RGB frames (B, 3, S, S), as it runs."""
    x = (to_grey(rgb) if frame.grey else rgb)
    with torch.no_grad():
        return frame.body[1](frame.body[0]((x - INPUT_MEAN) / INPUT_SCALE))


@pytest.mark.filterwarnings("ignore:.*keep their start")  # sta3d's encoder is wider here
@pytest.mark.parametrize("name", ["cnn3d", "static3d", "sta3d"])
def test_a_started_trunk_reads_a_static_clip_as_the_frame_model_reads_its_frame(name):
    frame = trained_like_frame_model()
    model = create_model(name, crop_size=16, clip_length=4, trunk_channels=[4, 8, 8, 8],
                         fc_hidden=8).eval()
    layers = init_from_frame_model(model, frame)
    assert layers["started"][:4] == ["trunk.stem.0", "trunk.body.1", "trunk.body.4",
                                     "trunk.body.7"]
    rgb = torch.rand(2, 3, 16, 16)
    clip = rgb.unsqueeze(2).repeat(1, 1, 4, 1, 1)
    with torch.no_grad():
        stem = model.trunk.stem[0]((clip - INPUT_MEAN) / INPUT_SCALE)
    expected = frame_first_stage(frame, rgb)
    for t in (1, 2):
        torch.testing.assert_close(stem[:, :, t], expected, rtol=1e-4, atol=1e-4)


def test_sta3d_attention_encoder_starts_from_the_first_stages_and_says_what_it_left():
    frame = trained_like_frame_model(channels=(32, 64, 8, 8))
    model = create_model("sta3d", crop_size=16, clip_length=4, trunk_channels=[32, 64, 8, 8],
                         fc_hidden=8).eval()  # encoder (32, 64, 128): its third stage differs
    with pytest.warns(UserWarning, match="attention_branch.encoder.layers.6"):
        layers = init_from_frame_model(model, frame, "frame.pt")
    assert "attention_branch.encoder.layers.0" in layers["started"]
    assert "attention_branch.encoder.layers.3" in layers["started"]
    assert layers["left"] == ["attention_branch.encoder.layers.6"]
    rgb = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        first = model.attention_branch.encoder.layers[0]((rgb - INPUT_MEAN) / INPUT_SCALE)
    torch.testing.assert_close(first, frame_first_stage(frame, rgb), rtol=1e-4, atol=1e-4)


def test_cnn2d_stacked_frames_read_a_static_clip_as_the_frame_model_reads_its_frame():
    frame = trained_like_frame_model()
    model = create_model("cnn2d", crop_size=16, clip_length=4, channels=[4, 8, 8, 8],
                         fc_hidden=8).eval()
    layers = init_from_frame_model(model, frame)
    assert layers["started"] == ["body.0", "body.3", "body.6", "body.9"] and not layers["left"]
    rgb = torch.rand(2, 3, 16, 16)
    clip = rgb.unsqueeze(2).repeat(1, 1, 4, 1, 1)
    with torch.no_grad():
        first = model.body[0](((clip - INPUT_MEAN) / INPUT_SCALE).flatten(1, 2))
    torch.testing.assert_close(first, frame_first_stage(frame, rgb), rtol=1e-4, atol=1e-4)


def test_training_from_a_frame_model_file_records_what_it_started_from(tiny_config_file,
                                                                       tmp_path, capsys):
    from avstan.cli import EXIT_USER_ERROR, main
    from avstan.models.model_file import TrainedModel

    frame = tmp_path / "frame.pt"
    TrainedModel(trained_like_frame_model(channels=(32, 64, 128, 256)),
                 ("valence", "arousal"), 4.0).save(frame)
    config = tiny_config_file("cnn3d", init_encoder=str(frame), max_epochs=1)
    assert main(["train", "--config", str(config)]) == 0
    started = TrainedModel.load(tmp_path / "run" / "model.pt").metadata["init_encoder"]
    assert started["from"] == str(frame) and not started["left"]
    assert started["started"] == ["trunk.stem.0", "trunk.body.1", "trunk.body.4",
                                  "trunk.body.7"]
    capsys.readouterr()
    # a model file that is not a frame model: one line, no run folder
    not_frame = tmp_path / "run" / "model.pt"
    config = tiny_config_file("cnn3d", name="again.yaml", init_encoder=str(not_frame))
    assert main(["train", "--config", str(config), "--output", str(tmp_path / "run2")]) \
        == EXIT_USER_ERROR
    error = capsys.readouterr().err.strip()
    assert "is a cnn3d model; give a frame model file" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "run2").exists()
