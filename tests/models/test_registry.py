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


# A gradient that is zero in exact arithmetic comes out of float64 rounding at ~1e-16 of
# the largest one (measured: 2e-18 for the biases removed in issue 29), while every real
# gradient of these tiny models is above 1e-3 of it: a parameter must clear this ratio.
REAL_GRADIENT_RATIO = 1e-10


def parameters_without_a_real_gradient(model, backward) -> list[str]:
    """Names of the parameters whose gradient is missing, not finite, or zero up to
    rounding. The model runs in float64, where rounding leaves a mathematically zero
    gradient some 1e-16 of the others, so none passes through rounding (in float32 a dead
    bias can show 1e-9, as on CPUs with AVX-512). ``backward(model)`` runs the forward pass
    and calls ``backward()`` on float64 inputs; several calls add up (e.g. around an SGD step)."""
    model.double()
    backward(model)
    norms = {n: (p.grad.norm().item() if p.grad is not None and torch.isfinite(p.grad).all()
                 else (0.0 if p.grad is None else float("nan")))
             for n, p in model.named_parameters() if p.requires_grad}
    largest = max((v for v in norms.values() if v == v), default=0.0)
    return [n for n, v in norms.items() if not v > REAL_GRADIENT_RATIO * largest]


def float64_inputs(model, **kwargs):
    return {k: v.double() for k, v in tiny_inputs(model, **kwargs).items()}


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
    missing = parameters_without_a_real_gradient(
        model, lambda m: m(**float64_inputs(m))["prediction"].square().sum().backward())
    assert not missing, f"{name}: parameters without a gradient: {missing}"


def test_the_gradient_check_catches_a_bias_that_only_rounding_moves():
    """A bias in front of a softmax over the same axis: zero gradient in exact arithmetic.
    The check must name it, and only it, whatever rounding leaves in float32."""
    torch.manual_seed(0)

    class DeadBias(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(6, 8)
            self.score = torch.nn.Linear(8, 1)  # its bias shifts every score alike
            self.output = torch.nn.Linear(6, 2)

        def forward(self, x):  # x (B, T, 6): attention over T
            weights = torch.softmax(self.score(torch.tanh(self.hidden(x))).squeeze(-1), dim=1)
            return self.output((weights.unsqueeze(-1) * x).sum(1))

    model = DeadBias()
    x = torch.randn(4, 5, 6)
    assert parameters_without_a_real_gradient(
        model, lambda m: m(x.double()).square().sum().backward()) == ["score.bias"]


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

    def two_steps(m):
        m(**float64_inputs(m))["prediction"].square().sum().backward()
        # A layer that starts at zero (attention_uniform_start) blocks the gradient of the
        # layers before it at the first step only: one SGD step, then a second backward
        # (the two gradients add up).
        with torch.no_grad():
            for p in m.parameters():
                if p.grad is not None:
                    p -= 0.1 * p.grad
        m(**float64_inputs(m))["prediction"].square().sum().backward()

    missing = parameters_without_a_real_gradient(model, two_steps)
    assert not missing, f"{name} {options}: parameters without a gradient: {missing}"
    model.float()
    model.eval()
    inputs = tiny_inputs(model)
    first = model(**inputs)
    assert "step_predictions" not in first
    torch.testing.assert_close(first["prediction"], model(**inputs)["prediction"])


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_a_lookahead_is_a_whole_number_of_steps(bad):
    # refused by the option's declaration (models/options.py), which names the key
    with pytest.raises(AvstanError, match=r"model\.options\.lookahead"):
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


# Every layer that is built without a bias, and the analytic reason it needs none. "shift"
# layers feed a softmax over the axis a bias would shift alike (the test below adds a
# constant per output channel and checks the prediction does not move); "sum" layers add
# into a sum that another layer's bias already shifts.
BIAS_FREE_LAYERS = {
    r"attention_branch\.attention\.logit": (
        "shift", "one constant on every logit of a frame; the softmax over its S·S locations "
        "ignores it (the layer runs as a matrix product, so test_attention.py checks it "
        "against the literal definition with a bias)"),
    r"attention_branch\.decoder\.upsamplers\.(\d+)(\.1)?": (
        "shift", "the decoder's last upsampling: the 1×1 logit layer turns a constant per "
        "channel into one constant on every logit of a frame"),
    r"(attention_branch|frame_encoder|pooling)\.score\.2": (
        "shift", "the attention's score: one constant on every score of the softmax over "
        "the steps (or frames)"),
    r"body\.\d+": (
        "norm", "a convolution followed by a batch norm, which subtracts each channel's "
        "batch mean: a constant per channel there never reaches the output"),
    r"attention_branch\.decoder\.cells\.\d+\.state_to_state": (
        "sum", "the ConvLSTM gates are input_to_state(x) + state_to_state(h): the input "
        "convolution's bias already shifts them"),
}


def bias_free_layers(model):
    layers = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.ConvTranspose2d,
              torch.nn.Linear)
    return {n: m for n, m in model.named_modules() if isinstance(m, layers) and m.bias is None}


def declared_reason(name):
    import re
    found = [reason for pattern, reason in BIAS_FREE_LAYERS.items()
             if re.search(rf"(^|\.){pattern}$", name)]
    return found[0] if found else None


# The frame model's options that change its layers (an expression head, valence/arousal
# from it, test-time flip averaging)
FRAME_VARIANTS = [
    ("frame2d", {"expression_classes": 8}),
    ("frame2d", {"expression_classes": 8, "va_from_expressions": True}),
    ("frame2d", {"expression_classes": 8, "va_from_expressions": True, "flip_average": True,
                 "grey": False}),
]
MODEL_VARIANTS = [(name, {}) for name in list_models()] + OPTION_VARIANTS + FRAME_VARIANTS


@pytest.mark.parametrize(("name", "options"), FRAME_VARIANTS)
def test_frame_options_every_parameter_gets_a_gradient(name, options):
    model = tiny_model(name, **options)
    out = model(**tiny_inputs(model))
    assert out["prediction"].shape == (2, 2) and out["expression_logits"].shape == (2, 8)

    def backward(m):  # the expression head learns from its own loss (cross-entropy)
        out = m(**float64_inputs(m))
        (out["prediction"].square().sum() + out["expression_logits"].square().sum()).backward()

    missing = parameters_without_a_real_gradient(model, backward)
    assert not missing, f"{name} {options}: parameters without a gradient: {missing}"
    model.eval()
    inputs = float64_inputs(model)
    first = model(**inputs)["prediction"]
    torch.testing.assert_close(first, model(**inputs)["prediction"])


@pytest.mark.parametrize(("name", "options"), MODEL_VARIANTS)
def test_every_layer_without_a_bias_is_declared_with_its_reason(name, options):
    model = tiny_model(name, **options)
    undeclared = [n for n in bias_free_layers(model) if declared_reason(n) is None]
    assert not undeclared, f"{name}: layers without a bias and no declared reason: {undeclared}"


@pytest.mark.parametrize(("name", "options"), MODEL_VARIANTS)
def test_a_constant_on_a_shift_layer_leaves_the_prediction_as_it_is(name, options):
    """The analytic reason, checked: adding a constant per output channel where a bias
    would be changes nothing; the same constant on a layer that has a bias does."""
    model = tiny_model(name, **options).double().eval()
    shift_layers = {n: m for n, m in bias_free_layers(model).items()
                    if declared_reason(n)[0] in ("shift", "norm")}
    if any(declared_reason(n)[0] == "norm" for n in shift_layers):
        # a batch norm removes the constant with the batch mean: training mode, no dropout
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    inputs = float64_inputs(model, generator=torch.Generator().manual_seed(3))

    def outputs():  # the prediction, and the expression head's logits where there is one
        out = model(**inputs)
        return torch.cat([out["prediction"], out.get("expression_logits",
                                                     out["prediction"][:, :0])], dim=1)

    with torch.no_grad():
        reference = outputs()
    if not shift_layers:
        pytest.skip(f"{name} has no layer whose bias a softmax would ignore")
    generator = torch.Generator().manual_seed(4)

    def predict_with_constant(module):
        width = module.weight.shape[1 if isinstance(module, torch.nn.ConvTranspose2d) else 0]
        constant = (torch.randn(width, generator=generator, dtype=torch.float64) + 2.0)

        def add(_, __, output):
            shape = (width,) if isinstance(module, torch.nn.Linear) else (width, 1, 1)
            return output + constant.view(shape)
        handle = module.register_forward_hook(add)
        called = []
        handle_called = module.register_forward_hook(lambda *_: called.append(True))
        with torch.no_grad():
            out = outputs()
        handle.remove()
        handle_called.remove()
        return out, bool(called)

    checked = 0
    for layer_name, module in shift_layers.items():
        out, called = predict_with_constant(module)
        if not called:  # computed without calling the module (the logit's matrix product)
            assert "test_attention.py" in declared_reason(layer_name)[1]
            continue
        torch.testing.assert_close(out, reference, rtol=1e-9, atol=1e-10)
        checked += 1
    # the control: the same hook on the output layer, which needs its bias, moves it
    with_bias = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
                 and m.bias is not None]
    moved, _ = predict_with_constant(with_bias[-1])
    assert not torch.allclose(moved, reference)
    assert checked or name in ("sta3d", "av_sta")


@pytest.mark.parametrize("upsampling", ["transposed", "resize_conv"])
def test_model_files_written_with_the_removed_biases_still_load_and_predict_the_same(upsampling):
    """sta3d's state dicts from before issue 29 hold the attention logit's bias and the
    decoder's last upsampling bias; they load (strictly) and predict what they did."""
    model = tiny_model("sta3d", upsampling=upsampling).eval()
    old = dict(model.state_dict())
    decoder = model.attention_branch.decoder
    last = (f"attention_branch.decoder.upsamplers.{len(decoder.upsamplers) - 1}."
            + ("1." if upsampling == "resize_conv" else ""))
    old["attention_branch.attention.logit.bias"] = torch.tensor([0.8])
    old[last + "bias"] = torch.randn(decoder.out_channels)
    loaded = tiny_model("sta3d", upsampling=upsampling).eval()
    loaded.load_state_dict(old)
    clip = torch.rand(2, 3, 4, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(clip)["prediction"], model(clip)["prediction"])
