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


# -- bases of the search mutants (bridge/verdict/search.py): kinds of wrong exports nobody listed ----------


class Rounded(nn.Module):
    """A value rounded to the nearest half on its way in (quantization-aware preprocessing): torch.round
    rounds .5 ties to even."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        return self.lin(torch.round(x * 2) / 2)


@_inputs("x:float32[batch,4]")
def rounded():
    torch.manual_seed(0)
    return Rounded().eval()


class Counts(nn.Module):
    """Small integer counts used as numbers (no embedding table: nothing states their range)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, counts):
        return self.lin(counts.float())


@_inputs("counts:int64[batch,4]")
def counts():
    torch.manual_seed(0)
    return Counts().eval()


class Masked(nn.Module):
    """Token states over a padded sequence: each position's own embedding plus the mean of the attended
    ones. Padded positions are defined (the native model returns finite values there)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 4)
        self.out = nn.Linear(4, 4)

    def forward(self, ids, attention_mask):
        e = self.emb(ids)
        m = attention_mask.unsqueeze(-1).float()
        pooled = (e * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)
        return self.out(e + pooled)


@_inputs("ids:int64[batch,seq]", "attention_mask:int64[batch,seq]")
def masked():
    torch.manual_seed(0)
    return Masked().eval()


# -- hard correct controls: right exports that a careless verifier would fail ------------------------------


class Deep(nn.Module):
    """Thirty residual ReLU layers whose activations grow into the hundreds (a deep network without
    normalisation): float32 rounding accumulates through them, and a right export must still pass."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(16, 16) for _ in range(30))

    def forward(self, x):
        for lin in self.layers:
            x = x + torch.relu(lin(x))
        return x


@_inputs("x:float32[batch,16]")
def deep():
    torch.manual_seed(0)
    return Deep().eval()


class NearTie(nn.Module):
    """Logits whose two best classes differ by about 1e-6: their argmax flips with rounding."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 1)

    def forward(self, x):
        base = self.lin(x)
        return torch.cat([base, base + 1e-6 * torch.tanh(x[:, :1]), base - 1.0], dim=1)


@_inputs("x:float32[batch,8]")
def near_tie():
    torch.manual_seed(0)
    return NearTie().eval()


class LongSum(nn.Module):
    """A sum over 20,000 elements: the order of the additions differs between runtimes."""

    def forward(self, x):
        return (x * 3.0).sum(dim=1, keepdim=True)


@_inputs("x:float32[batch,20000]")
def long_sum():
    return LongSum().eval()
