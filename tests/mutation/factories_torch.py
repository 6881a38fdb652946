"""PyTorch models of the mutation suite (tests/mutation). Tiny and seeded.

Two kinds live here:

* correct models (``mix``, ``recur``, ``mlp``, ``linear4``, ``log``): tests/mutation/build.py exports
  them, then makes wrong graphs from the exports (the native model stays right); ``log`` is only
  ever exported correctly, as a control;
* models that are themselves the trap (``softmax1000``, ``onehot``, ``position_constant``,
  ``tiny_change``, ``dropout_train``): exported faithfully, their reference outputs prove nothing or
  need bridge to fix the model's mode.

Every factory but ``dropout_train`` returns its model in eval mode, so that the train-mode trap is
the only one of its kind. Factories declare their inputs with ``bridge_inputs`` /
``bridge_input_ranges`` attributes; the module-level ``BRIDGE_INPUTS`` / ``BRIDGE_INPUT_RANGES``
below apply to the factories without them (``linear4`` and ``log``), the way a one-model module
declares its inputs.
"""

import torch
from torch import nn

# For the factories that declare nothing themselves: a dynamic batch, and values in 0.1:1 (where
# log is finite and of moderate size).
BRIDGE_INPUTS = ["x:float32[batch,4]"]
BRIDGE_INPUT_RANGES = {"x": "0.1:1"}


def _inputs(*specs, ranges=None):
    def deco(fn):
        fn.bridge_inputs = list(specs)
        fn.bridge_input_ranges = dict(ranges or {})
        return fn

    return deco


# -- correct models, corrupted after export ------------------------------------------------------------


class Mix(nn.Module):
    """Two same-shaped float inputs with different roles, token ids into a 500-row table, and two
    same-shaped outputs: one base for range, batch, name, output and weight mutants."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(500, 8)
        self.la = nn.Linear(4, 16)
        self.lb = nn.Linear(4, 16)
        self.le = nn.Linear(8, 16)
        self.hp = nn.Linear(16, 3)
        self.hq = nn.Linear(16, 3)

    def forward(self, a, b, ids):
        e = self.emb(ids).mean(1)
        h = torch.tanh(self.la(a) + self.lb(b) + self.le(e))
        return {"p": self.hp(h), "q": self.hq(h)}


@_inputs(
    "a:float32[batch,4]", "b:float32[batch,4]", "ids:int64[batch,6]", ranges={"a": "0:1", "b": "0:1", "ids": "0:500"}
)
def mix():
    torch.manual_seed(0)
    return Mix().eval()


class Recur(nn.Module):
    """A recurrence over x[batch, seq, 4]: h_t = h_(t-1) + W x_t + c (a linear RNN, as a running sum),
    per-step outputs tanh(h_t) and the final state. (nn.GRU is not used: torch's dynamo exporter
    writes its per-step output as [batch, 2, 5], the export's sequence length baked into the
    declared shape, and that exporter quirk is not what these mutants measure.)"""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(4, 5)

    def forward(self, x):
        steps = torch.tanh(torch.cumsum(self.inp(x), dim=1))
        return {"steps": steps, "state": steps[:, -1]}


@_inputs("x:float32[batch,seq,4]")
def recur():
    torch.manual_seed(0)
    return Recur().eval()


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(4, 16)
        self.l2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x)))


@_inputs("x:float32[batch,4]")
def mlp():
    """Saved as a .pt2 program by the builder (torch.export.save)."""
    torch.manual_seed(0)
    return MLP().eval()


def linear4():
    """Declared by the module: x:float32[batch,4]. The builder exports it with batch fixed to 1."""
    torch.manual_seed(0)
    return nn.Linear(4, 3).eval()


class _Log(nn.Module):
    def forward(self, x):
        return torch.log(x)


def log():
    """Declared by the module: x in 0.1:1, where log is finite. Outside it, NaN on both sides."""
    return _Log().eval()


# -- models whose reference proves nothing ----------------------------------------------------------------


class _Softmax1000(nn.Module):
    """A random-init classifier head: softmax over 1000 classes, every value 0.001 +- 1e-7."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(16, 1000)
        with torch.no_grad():
            self.head.weight.mul_(1e-4)
            self.head.bias.zero_()

    def forward(self, x):
        return torch.softmax(self.head(x), dim=-1)


@_inputs("x:float32[batch,16]")
def softmax1000():
    torch.manual_seed(0)
    return _Softmax1000().eval()


class _OneHot(nn.Module):
    """Class 7 wins for every input: the output is the same one-hot row whatever the input."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 10)
        with torch.no_grad():
            self.head.weight.mul_(1e-3)
            self.head.bias.zero_()
            self.head.bias[7] = 200.0

    def forward(self, x):
        return torch.softmax(self.head(x), dim=-1)


@_inputs("x:float32[batch,4]")
def onehot():
    torch.manual_seed(0)
    return _OneHot().eval()


class _PositionConstant(nn.Module):
    """A learned tensor returned as is: varies across positions, never with the input."""

    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(1, 10))

    def forward(self, x):
        return self.table + 0.0 * x.sum(1, keepdim=True)


@_inputs("x:float32[batch,4]")
def position_constant():
    torch.manual_seed(0)
    return _PositionConstant().eval()


class _TinyChange(nn.Module):
    """float64 outputs of size ~1 that move by ~1e-13 with the input: far below any tolerance."""

    def __init__(self):
        super().__init__()
        self.register_buffer("base", torch.randn(1, 10, dtype=torch.float64))
        self.register_buffer("weight", torch.randn(4, 10, dtype=torch.float64))

    def forward(self, x):
        return self.base + 1e-13 * (x.to(torch.float64) @ self.weight)


@_inputs("x:float32[batch,4]")
def tiny_change():
    torch.manual_seed(0)
    return _TinyChange().eval()


# -- a model handed over in the wrong mode -------------------------------------------------------------------


class _DropNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(4, 16)
        self.drop = nn.Dropout(0.5)
        self.l2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.l2(self.drop(torch.relu(self.l1(x))))


@_inputs("x:float32[batch,4]")
def dropout_train():
    """Returned in training mode, as a training script leaves it: dropout active until eval()."""
    torch.manual_seed(0)
    model = _DropNet()
    model.train()
    return model
