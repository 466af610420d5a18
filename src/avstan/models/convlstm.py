"""Convolutional LSTM with peepholes (Shi et al. 2015; eq. 1 of the ICASSP 2018 paper).

    i_t = σ(W_xi * X_t + W_hi * H_{t-1} + W_ci ⊙ c_{t-1} + b_i)
    f_t = σ(W_xf * X_t + W_hf * H_{t-1} + W_cf ⊙ c_{t-1} + b_f)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ tanh(W_xc * X_t + W_hc * H_{t-1} + b_c)
    o_t = σ(W_xo * X_t + W_ho * H_{t-1} + W_co ⊙ c_t + b_o)
    H_t = o_t ⊙ tanh(c_t)

``*`` is a 3×3 convolution, ``⊙`` the Hadamard product. The ICASSP paper prints the
input and forget peepholes as convolutions (``W_ci * c_{t-1}``); we follow Shi et al.,
whom it cites, and DESIGN.md: all three peepholes are Hadamard products with a weight of
the cell state's own shape (channels × height × width), so the cell is tied to one spatial
size, which the decoder knows. The output gate looks at the *new* cell state c_t.

For speed the four gate convolutions are fused into one convolution per input, and the
input-to-state convolution runs once over all time steps before the recurrence; only the
state-to-state convolution stays inside the time loop. A literal, gate-by-gate version
of the equations is in the tests and must agree with this one.

Initialisation: the convolutions are Xavier-uniform (as the papers), peepholes start at
zero (the cell starts as a plain ConvLSTM and learns to use them), and the forget-gate bias
starts at 1 (Jozefowicz et al. 2015) so early gradients pass through the recurrence.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

GATES = ("input", "forget", "cell", "output")


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer run over a whole sequence.

    Args:
        input_channels: channels of X_t.
        hidden_channels: channels of H_t and c_t.
        spatial_size: (height, width) of X_t, H_t and c_t (the peephole weights' shape).
        kernel_size: size of the input-to-state and state-to-state convolutions.
        peephole: use the W_c ⊙ c peephole terms.
    """

    def __init__(self, input_channels: int, hidden_channels: int, spatial_size: tuple[int, int],
                 kernel_size: int = 3, peephole: bool = True) -> None:
        super().__init__()
        self.input_channels = input_channels
        self.hidden_channels = hidden_channels
        self.spatial_size = tuple(spatial_size)
        padding = kernel_size // 2
        # Gate order along the output channels: input, forget, cell, output.
        self.input_to_state = nn.Conv2d(input_channels, 4 * hidden_channels, kernel_size,
                                        padding=padding, bias=True)
        self.state_to_state = nn.Conv2d(hidden_channels, 4 * hidden_channels, kernel_size,
                                        padding=padding, bias=False)
        self.peephole = peephole
        if peephole:
            shape = (hidden_channels, *self.spatial_size)
            self.peephole_input = nn.Parameter(torch.zeros(shape))
            self.peephole_forget = nn.Parameter(torch.zeros(shape))
            self.peephole_output = nn.Parameter(torch.zeros(shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.input_to_state.weight)
        nn.init.xavier_uniform_(self.state_to_state.weight)
        with torch.no_grad():
            self.input_to_state.bias.zero_()
            hidden = self.hidden_channels
            self.input_to_state.bias[hidden:2 * hidden] = 1.0  # forget gate
            if self.peephole:
                for weight in (self.peephole_input, self.peephole_forget, self.peephole_output):
                    weight.zero_()

    def initial_state(self, batch: int, like: Tensor) -> tuple[Tensor, Tensor]:
        shape = (batch, self.hidden_channels, *self.spatial_size)
        zeros = like.new_zeros(shape)
        return zeros, zeros

    def forward(self, inputs: Tensor, state: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run the cell over a sequence.

        Args:
            inputs: (B, T, C_in, H, W).
            state: (H_0, c_0), each (B, C_hidden, H, W); zeros when None.

        Returns:
            hidden: (B, T, C_hidden, H, W), the H_t of every step, and the final (H_T, c_T).
        """
        return self.recur(self.input_gates(inputs), state)

    def input_gates(self, inputs: Tensor) -> Tensor:
        """The input-to-state term of every gate, (B, T, C_in, H, W) → (B, T, 4·C_hidden, H, W).

        It depends on each X_t alone, so one large convolution serves all steps (and, in
        sliding-window prediction, every window that contains the frame)."""
        batch, steps = inputs.shape[:2]
        if tuple(inputs.shape[-2:]) != self.spatial_size:
            raise ValueError(f"ConvLSTMCell built for {self.spatial_size}, got input "
                             f"{tuple(inputs.shape[-2:])}")
        gates = self.input_to_state(inputs.flatten(0, 1))
        return gates.view(batch, steps, *gates.shape[1:])

    def recur(self, input_gates: Tensor, state: tuple[Tensor, Tensor] | None = None
              ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The recurrence over precomputed ``input_gates`` (B, T, 4·C_hidden, H, W); returns
        what :meth:`forward` returns."""
        batch = input_gates.shape[0]
        hidden, cell = self.initial_state(batch, input_gates) if state is None else state
        outputs = []
        # unbind, not input_gates[:, step]: indexing would make backward allocate and fill
        # a full-size zero gradient for every step (quadratic in T).
        for input_gate in input_gates.unbind(1):
            gates = input_gate + self.state_to_state(hidden)
            gate_i, gate_f, gate_c, gate_o = gates.chunk(4, dim=1)
            if self.peephole:
                gate_i = gate_i + self.peephole_input * cell
                gate_f = gate_f + self.peephole_forget * cell
            cell = torch.sigmoid(gate_f) * cell + torch.sigmoid(gate_i) * torch.tanh(gate_c)
            if self.peephole:
                gate_o = gate_o + self.peephole_output * cell
            hidden = torch.sigmoid(gate_o) * torch.tanh(cell)
            outputs.append(hidden)
        return torch.stack(outputs, dim=1), (hidden, cell)

    def gate_weights(self, gate: str) -> tuple[Tensor, Tensor, Tensor]:
        """The (W_x, W_h, b) of one gate, sliced out of the fused convolutions (for tests)."""
        index = GATES.index(gate)
        rows = slice(index * self.hidden_channels, (index + 1) * self.hidden_channels)
        return (self.input_to_state.weight[rows], self.state_to_state.weight[rows],
                self.input_to_state.bias[rows])
