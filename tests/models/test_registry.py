"""Every registered model, at a tiny size, in timm's manner: a new model is covered the
moment it is registered."""

import pytest
import torch

from avstan.errors import AvstanError
from avstan.models import create_model, list_models, model_arguments

TINY = {"crop_size": 16, "clip_length": 4, "audio_features": 6,
        "video": {"encoder_channels": [4, 8], "decoder_channels": [8, 4],
                  "trunk_channels": [4, 8, 8, 8], "fc_hidden": 8},
        "audio": {"hidden": 8, "layers": 2}}


def tiny_model(name: str, **extra):
    options = {k: v for k, v in TINY.items() if k in model_arguments(name)}
    options.update(extra)
    torch.manual_seed(0)
    return create_model(name, **options)


def tiny_inputs(model, batch=2, generator=None):
    """Random inputs for every entry the model reads (clip (B,3,4,16,16), audio (B,4,6))."""
    shapes = {"clip": (batch, 3, 4, 16, 16), "audio": (batch, 4, 6),
              "mask": (batch, 4, 16, 16)}
    inputs = {name: torch.rand(shapes[name], generator=generator) for name in model.input_names}
    if "audio" in inputs:
        inputs["audio"] = inputs["audio"] * 4 - 2
    return inputs


def test_the_papers_models_are_registered():
    assert {"sta3d", "cnn3d", "cnn2d", "lstm", "lstm_ta", "av_sta"} <= set(list_models())


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("targets", [["valence", "arousal"], ["valence"]])
def test_forward_backward_every_parameter_gets_a_gradient(name, targets):
    model = tiny_model(name, targets=targets)
    out = model(**tiny_inputs(model))
    assert out["prediction"].shape == (2, len(targets))
    assert out["features"].ndim == 2 and out["features"].shape[0] == 2
    assert torch.isfinite(out["prediction"]).all()
    # Only the prediction is backpropagated: every attention parameter must be reachable
    # from the label alone, as the papers learn it.
    out["prediction"].square().sum().backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all()
                                       or p.grad.abs().sum() == 0)]
    assert not missing, f"{name}: parameters without a gradient: {missing}"


@pytest.mark.parametrize("name", list_models())
def test_attention_maps_are_distributions_over_each_frame(name):
    model = tiny_model(name)
    out = model(**tiny_inputs(model))
    if "attention" not in out:
        pytest.skip(f"{name} has no attention")
    attention = out["attention"]
    assert attention.shape == (2, 4, 16, 16)
    assert (attention >= 0).all()
    torch.testing.assert_close(attention.sum(dim=(-2, -1)), torch.ones(2, 4))


@pytest.mark.parametrize("name", list_models())
def test_prediction_depends_only_on_the_clip_in_eval_mode(name):
    model = tiny_model(name).eval()
    inputs = tiny_inputs(model, batch=3)
    batched = model(**inputs)["prediction"]
    single = torch.cat([model(**{k: v[i:i + 1] for k, v in inputs.items()})["prediction"]
                        for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list_models())
def test_convolutions_are_channels_last_and_compute_what_contiguous_ones_do(name):
    model = tiny_model(name).eval()
    convolutions = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
    layouts = {2: torch.channels_last, 3: torch.channels_last_3d}
    assert all(m.weight.is_contiguous(memory_format=layouts[m.weight.ndim - 2])
               for m in convolutions)
    if not convolutions:
        pytest.skip(f"{name} has no convolution")
    assert not all(m.weight.is_contiguous() for m in convolutions)
    # the independent reference: the same weights in the default layout
    reference = tiny_model(name).eval()
    reference.load_state_dict(model.state_dict())
    for parameter in reference.parameters():
        parameter.data = parameter.data.contiguous()
    assert all(m.weight.is_contiguous() for m in reference.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)))
    inputs = tiny_inputs(model, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs)["prediction"],
                                   reference(**inputs)["prediction"], rtol=1e-4, atol=1e-5)


def test_xavier_uniform_initialisation():
    model = tiny_model("cnn3d")
    weight = model.trunk.body[1].weight  # conv3d(32 -> 64)
    fan_in = weight.shape[1] * weight[0, 0].numel()
    fan_out = weight.shape[0] * weight[0, 0].numel()
    bound = (6.0 / (fan_in + fan_out)) ** 0.5
    assert weight.abs().max() <= bound
    assert weight.abs().max() > 0.9 * bound  # uniform over the whole range, not a narrower init
    assert model.trunk.body[1].bias.abs().sum() == 0


def test_attention_from_previous_step_makes_the_first_frame_uniform():
    model = tiny_model("sta3d", attention_from="previous")
    attention = model(torch.rand(2, 3, 4, 16, 16))["attention"]
    torch.testing.assert_close(attention[:, 0], torch.full((2, 16, 16), 1 / 256))
    current = tiny_model("sta3d", attention_from="current")
    assert not torch.allclose(current(torch.rand(2, 3, 4, 16, 16))["attention"][:, 0],
                              torch.full((2, 16, 16), 1 / 256))


def test_attention_from_previous_step_is_causal():
    """Frame t's map must not depend on frame t (it comes from H_{t-1})."""
    model = tiny_model("sta3d", attention_from="previous").eval()
    clip = torch.rand(1, 3, 4, 16, 16)
    changed = clip.clone()
    changed[:, :, 2] = torch.rand(3, 16, 16)
    a, b = model(clip)["attention"], model(changed)["attention"]
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_fixed_uniform_attention_equals_no_attention():
    """S·S rescaling: uniform attention is the identity, so cnn3d == its trunk with uniform maps."""
    model = tiny_model("cnn3d").eval()
    clip = torch.rand(2, 3, 4, 16, 16)
    uniform = torch.full((2, 4, 16, 16), 1 / 256)
    torch.testing.assert_close(model(clip)["prediction"],
                               model(clip, attention=uniform)["prediction"])


def test_zero_init_logits_start_uniform():
    model = tiny_model("sta3d", zero_init_logits=True, attention_from="current")
    attention = model(torch.rand(2, 3, 4, 16, 16))["attention"]
    torch.testing.assert_close(attention, torch.full_like(attention, 1 / 256))


def test_unknown_model_and_option_are_clear_errors():
    with pytest.raises(AvstanError, match="unknown model 'sta4d'.*available: .*sta3d"):
        create_model("sta4d")
    with pytest.raises(AvstanError, match="no option 'crop_sise'"):
        create_model("sta3d", crop_sise=48)


# Every option that is not a size: each variant runs the same forward/backward sweep.
OPTION_VARIANTS = [
    ("lstm", {"recording_standardisation": True}),
    ("lstm", {"input_noise": 0.3}),
    ("lstm", {"lstm_dropout": 0.3}),
    ("lstm", {"linear_skip": True}),
    ("lstm", {"lookahead": 6}),
    ("lstm_ta", {"recording_standardisation": True}),
    ("lstm_ta", {"input_noise": 0.3}),
    ("lstm_ta", {"lstm_dropout": 0.3}),
    ("lstm_ta", {"linear_skip": True}),
    ("lstm_ta", {"lookahead": 6}),
    ("lstm_ta", {"attention_uniform_start": True}),
    ("lstm_ta", {"attention_pooling": True}),
    ("lstm", {"frame_descriptors": 3}),
    ("lstm_ta", {"frame_descriptors": 2, "frame_channels": 4}),
]


@pytest.mark.parametrize(("name", "options"), OPTION_VARIANTS)
def test_options_forward_backward_every_parameter_gets_a_gradient(name, options):
    model = tiny_model(name, **options)
    out = model(**tiny_inputs(model))
    assert out["prediction"].shape == (2, 2) and torch.isfinite(out["prediction"]).all()
    # In training the audio models also predict every step (a loss on every step).
    assert out["step_predictions"].shape == (2, 4, 2)
    out["prediction"].square().sum().backward()
    reached = {n for n, p in model.named_parameters()
               if p.grad is not None and p.grad.abs().sum() > 0}
    # A layer that starts at zero (attention_uniform_start) blocks the gradient of the
    # layers before it at the first step only: one SGD step, then a second backward.
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    model.zero_grad()
    model(**tiny_inputs(model))["prediction"].square().sum().backward()
    reached |= {n for n, p in model.named_parameters()
                if p.grad is not None and p.grad.abs().sum() > 0}
    missing = [n for n, p in model.named_parameters() if p.requires_grad and n not in reached]
    assert not missing, f"{name} {options}: parameters without a gradient: {missing}"
    model.eval()
    inputs = tiny_inputs(model)
    first = model(**inputs)
    assert "step_predictions" not in first
    torch.testing.assert_close(first["prediction"], model(**inputs)["prediction"])


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_a_lookahead_is_a_whole_number_of_steps(bad):
    with pytest.raises(AvstanError, match="lookahead must be a whole number of steps"):
        tiny_model("lstm", lookahead=bad)
    assert tiny_model("lstm_ta", lookahead=2).lookahead == 2
    assert tiny_model("lstm").lookahead == 0


def test_the_fusion_refuses_an_audio_branch_that_reads_ahead():
    with pytest.raises(AvstanError, match="audio branch's lookahead .*not supported"):
        tiny_model("av_sta", audio={"lookahead": 2})
    assert tiny_model("av_sta").lookahead == 0


def test_input_noise_changes_training_outputs_only():
    model = tiny_model("lstm", input_noise=0.5)
    inputs = tiny_inputs(model)
    model.train()
    model.dropout.p = 0.0  # leave the noise as the only random part
    assert not torch.allclose(model(**inputs)["prediction"], model(**inputs)["prediction"])
    quiet = tiny_model("lstm", input_noise=0.0)
    quiet.dropout.p = 0.0
    torch.testing.assert_close(quiet(**inputs)["prediction"], quiet(**inputs)["prediction"])


def test_last_step_prediction_is_the_last_of_the_step_predictions():
    model = tiny_model("lstm_ta", dropout=0.0)
    out = model(**tiny_inputs(model))
    torch.testing.assert_close(out["step_predictions"][:, -1], out["prediction"])


@pytest.mark.parametrize("name", ["lstm", "lstm_ta"])
def test_linear_skip_at_zero_lstm_output_is_the_linear_map_of_the_step_features(name):
    """With the LSTM branch's output layer zeroed, the prediction is W z_t + b of each
    step's standardised features z_t = clamp((x_t - center) / scale), computed here by hand."""
    model = tiny_model(name, linear_skip=True)
    center, scale = torch.linspace(-1, 1, 6), torch.linspace(0.5, 2, 6)
    model.audio_standardiser.set_statistics(center, scale)
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.zero_()
        # the path starts at zero (the model starts as its LSTM branch): give it weights
        model.linear_path.weight.copy_(torch.randn(2, 6))
        model.linear_path.bias.copy_(torch.tensor([0.3, -0.2]))
    audio = tiny_inputs(model)["audio"] * 8  # some features beyond the clip at |z| = 5
    weight, bias = model.linear_path.weight.detach(), model.linear_path.bias.detach()
    z = ((audio - center) / scale).clamp(-5, 5)
    expected = torch.einsum("btd,kd->btk", z, weight) + bias
    model.eval()
    torch.testing.assert_close(model(audio)["prediction"], expected[:, -1])
    model.train()
    torch.testing.assert_close(model(audio)["step_predictions"], expected)


def test_linear_skip_adds_the_linear_map_to_the_lstm_output():
    model = tiny_model("lstm", linear_skip=True).eval()
    assert model.linear_path.weight.abs().sum() == 0  # it starts as the LSTM branch alone
    with torch.no_grad():
        model.linear_path.weight.normal_()
    audio = tiny_inputs(model)["audio"]
    with_path = model(audio)["prediction"]
    linear = model.linear_path(model.audio_standardiser(audio)[:, -1])
    model.linear_path = None
    torch.testing.assert_close(with_path, model(audio)["prediction"] + linear)
