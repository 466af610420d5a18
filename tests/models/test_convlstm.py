"""The fused ConvLSTM cell against a literal, gate-by-gate transcription of eq. (1)."""

import torch
import torch.nn.functional as F

from avstan.models.convlstm import ConvLSTMCell


def literal_convlstm(cell: ConvLSTMCell, inputs: torch.Tensor) -> torch.Tensor:
    """Eq. (1) of the ICASSP paper written out gate by gate, one step at a time.

    Uses separate convolutions per gate and input (sliced out of the cell's weights), and
    Hadamard peepholes W_ci ⊙ c_{t-1}, W_cf ⊙ c_{t-1}, W_co ⊙ c_t.
    """
    w_xi, w_hi, b_i = cell.gate_weights("input")
    w_xf, w_hf, b_f = cell.gate_weights("forget")
    w_xc, w_hc, b_c = cell.gate_weights("cell")
    w_xo, w_ho, b_o = cell.gate_weights("output")
    w_ci, w_cf, w_co = cell.peephole_input, cell.peephole_forget, cell.peephole_output
    batch, steps = inputs.shape[:2]
    h = torch.zeros(batch, cell.hidden_channels, *cell.spatial_size)
    c = torch.zeros_like(h)
    hidden_states = []

    def conv(x, w, b=None):
        return F.conv2d(x, w, b, padding=w.shape[-1] // 2)

    for t in range(steps):
        x = inputs[:, t]
        i = torch.sigmoid(conv(x, w_xi, b_i) + conv(h, w_hi) + w_ci * c)
        f = torch.sigmoid(conv(x, w_xf, b_f) + conv(h, w_hf) + w_cf * c)
        c = f * c + i * torch.tanh(conv(x, w_xc, b_c) + conv(h, w_hc))
        o = torch.sigmoid(conv(x, w_xo, b_o) + conv(h, w_ho) + w_co * c)
        h = o * torch.tanh(c)
        hidden_states.append(h)
    return torch.stack(hidden_states, dim=1)


def randomised_cell(seed: int) -> ConvLSTMCell:
    torch.manual_seed(seed)
    cell = ConvLSTMCell(3, 5, (6, 7))
    with torch.no_grad():
        for parameter in cell.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.5)  # peepholes non-zero too
    return cell


def test_fused_cell_equals_literal_equations():
    for seed in range(3):
        cell = randomised_cell(seed)
        inputs = torch.randn(2, 5, 3, 6, 7)
        fused, (h_last, c_last) = cell(inputs)
        literal = literal_convlstm(cell, inputs)
        assert fused.shape == (2, 5, 5, 6, 7)
        torch.testing.assert_close(fused, literal, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(h_last, literal[:, -1])


def test_peepholes_change_the_output_and_receive_gradients():
    cell = randomised_cell(0)
    inputs = torch.randn(2, 4, 3, 6, 7)
    hidden, _ = cell(inputs)
    hidden.square().sum().backward()
    for weight in (cell.peephole_input, cell.peephole_forget, cell.peephole_output):
        assert weight.grad is not None and weight.grad.abs().sum() > 0
    with torch.no_grad():
        cell.peephole_output.zero_()
    assert not torch.allclose(cell(inputs)[0], hidden)


def test_fresh_cell_starts_with_zero_peepholes_and_open_forget_gate():
    cell = ConvLSTMCell(2, 4, (5, 5))
    assert cell.peephole_input.abs().sum() == 0
    _, _, forget_bias = cell.gate_weights("forget")
    assert torch.all(forget_bias == 1.0)
    _, _, input_bias = cell.gate_weights("input")
    assert torch.all(input_bias == 0.0)


def test_state_carries_over_between_calls():
    cell = randomised_cell(1)
    inputs = torch.randn(1, 6, 3, 6, 7)
    whole, _ = cell(inputs)
    first, state = cell(inputs[:, :3])
    second, _ = cell(inputs[:, 3:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
