"""The four recurrent cells, behind one interface: forward over a sequence, and raw per-layer weights."""
import math

import torch
from torch import nn

CELLS = ("rnn-scratch", "rnn", "gru", "lstm")


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout with its mask drawn by uniform_: F.dropout's bernoulli_ is a large share of a CPU training step."""
    if not training or not p:
        return x
    return x * (torch.rand_like(x) >= p).to(x.dtype).div_(1 - p)


class ScratchRNNLayer(nn.Module):
    """One layer of h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h), written out by hand."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        bound = 1 / math.sqrt(hidden_size)
        self.W_xh = nn.Parameter(torch.empty(input_size, hidden_size).uniform_(-bound, bound))
        self.W_hh = nn.Parameter(torch.empty(hidden_size, hidden_size).uniform_(-bound, bound))
        self.b_h = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xw = torch.addmm(self.b_h, x.flatten(0, 1), self.W_xh).view(*x.shape[:2], -1)  # all steps at once
        outputs = []
        for t in range(x.shape[1]):
            h = torch.tanh(xw[:, t] + h @ self.W_hh)
            outputs.append(h)
        return torch.stack(outputs, 1), h


class ScratchRNN(nn.Module):
    """A stack of ScratchRNNLayer with the calling convention of nn.RNN(batch_first=True)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        sizes = [input_size] + [hidden_size] * (num_layers - 1)
        self.layers = nn.ModuleList(ScratchRNNLayer(n, hidden_size) for n in sizes)
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.dropout = dropout

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        if state is None:
            state = x.new_zeros(self.num_layers, x.shape[0], self.hidden_size)
        finals = []
        for i, layer in enumerate(self.layers):
            if i:
                x = dropout(x, self.dropout, self.training)
            x, h = layer(x, state[i])
            finals.append(h)
        return x, torch.stack(finals)


def make_cell(cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float) -> nn.Module:
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {cell!r}")
    if cell == "rnn-scratch":
        return ScratchRNN(input_size, hidden_size, num_layers, dropout)
    module = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
    return module(input_size, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)


def layer_weights(rnn: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per layer (W_ih [G*H, in], b_ih, W_hh [G*H, H], b_hh) in torch.nn's layout, for any cell."""
    if isinstance(rnn, ScratchRNN):
        return [(l.W_xh.t(), l.b_h, l.W_hh.t(), torch.zeros_like(l.b_h)) for l in rnn.layers]
    return [tuple(getattr(rnn, f"{name}_l{k}") for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh"))
            for k in range(rnn.num_layers)]
