"""Small PyTorch factories for tests/hostile: each one provokes one catalogue entry. Seeded."""

import torch
from torch import nn


def _inputs(*specs, ranges=None):
    def deco(fn):
        fn.bridge_inputs = list(specs)
        fn.bridge_input_ranges = dict(ranges or {})
        return fn

    return deco


@_inputs("x:float32[batch,4]")
def linear():
    """A plain Linear(4, 4): the model the --weights payloads pretend to be weights for."""
    torch.manual_seed(0)
    return nn.Linear(4, 4)


class _Log(nn.Module):
    def forward(self, x):
        return torch.log(x)  # NaN for negative inputs, -inf at 0: on both sides, at the same places


@_inputs("x:float32[batch,4]")
def log():
    return _Log()


class _ForcedTrainBN(nn.Module):
    """Switches BatchNorm back to training mode inside forward: bridge's eval() cannot stick."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x):
        self.bn.train()
        return self.bn(x)


@_inputs("x:float32[3,4]")  # fixed batch: BatchNorm in training mode cannot run a batch of 1
def forced_train_bn():
    torch.manual_seed(0)
    return _ForcedTrainBN()


class _BakedWidth(nn.Module):
    """C02: reads a declared-dynamic axis as a Python int; tracing bakes it into the graph."""

    def forward(self, x):
        return x.sum(1, keepdim=True) / int(x.shape[1])


@_inputs("x:float32[batch,n]")
def baked_width():
    return _BakedWidth()


class _Embedding5(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5, 3)

    def forward(self, ids):
        return self.emb(ids)


@_inputs("ids:int64[batch,3]")
def embedding5():
    """C10: generated ids default to [0, 10), beyond the 5-row table."""
    torch.manual_seed(0)
    return _Embedding5()


class _Int32Scale(nn.Module):
    def forward(self, ids):
        return ids.to(torch.float64) * 0.5


@_inputs("ids:int32[batch,2]")
def int32_scale():
    """C05: an int32 input; real samples given as int64 must not be narrowed silently."""
    return _Int32Scale()


class _DictOut(nn.Module):
    def forward(self, x):
        return {"logits": x * 2.0 + 1.0, "aux": x * 3.0 - 1.0}


@_inputs("x:float32[batch,4]")
def dict_out():
    """N06: two outputs of the same shape, told apart only by name."""
    return _DictOut()


class _Branchy(nn.Module):
    """C03: data-dependent control flow; a tracer keeps only the branch the example input took."""

    def forward(self, x):
        if x.sum() > 0:
            return x * 2.0
        return x - 100.0


@_inputs("x:float32[batch,4]")
def branchy():
    return _Branchy()


@_inputs("x:float32[batch,256]")
def wide():
    """Linear(256, 256): about 260 KB of weights, for writes that must fail part-way."""
    torch.manual_seed(0)
    return nn.Linear(256, 256)
