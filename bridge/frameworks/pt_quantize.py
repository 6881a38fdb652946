"""PyTorch's own int8: the peer a bridge int8 artifact is timed against. ``torch.ao.quantization.
quantize_dynamic`` replaces a model's ``nn.Linear`` and ``nn.LSTM`` modules by dynamically quantized
ones (int8 weights, activations quantized per call), which is what a PyTorch user gets without
leaving PyTorch. Only an eager ``nn.Module`` can be quantized this way (not a ``.pt2`` program)."""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from bridge.frameworks.pt import TorchModel

QUANTIZED = (nn.Linear, nn.LSTM)


def dynamic_int8(model: TorchModel) -> tuple[TorchModel | None, dict]:
    """(the model's torch.ao dynamic int8 twin, or None when there is nothing to quantize; the record)."""
    if model.program is not None or not isinstance(model.module, nn.Module):
        return None, {"why": "a torch.export program: torch.ao's eager dynamic quantization needs an nn.Module"}
    counts = {}
    for m in model.module.modules():
        for kind in QUANTIZED:
            if type(m) is kind:
                counts[kind.__name__] = counts.get(kind.__name__, 0) + 1
    if not counts:
        return None, {"why": "no nn.Linear or nn.LSTM module: torch.ao's dynamic quantization has nothing to quantize"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        quantized = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model.module).to("cpu"), set(QUANTIZED), dtype=torch.qint8
        )
    twin = TorchModel(f"{model.source} (torch.ao dynamic int8)", quantized.eval())
    return twin, {
        "method": f"torch.ao.quantization.quantize_dynamic(model, {{nn.Linear, nn.LSTM}}, dtype=torch.qint8) "
        f"(torch {torch.__version__})",
        "modules": counts,
        "device": "cpu",
    }
