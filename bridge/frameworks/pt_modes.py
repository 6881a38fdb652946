"""What switching a torch module from training to eval mode changes: dropout turned off, normalisation on
its running statistics, and code of its own that reads ``self.training``. A model with none of these
computes the same in both modes, and a note about the switch would say nothing."""

from __future__ import annotations

import torch


def mode_dependent(module: torch.nn.Module) -> list[str]:
    """The layers whose output depends on the mode, as ``Dropout x3, BatchNorm2d x20`` counts, in the
    order first met; empty when eval() changes nothing."""
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.dropout import _DropoutNd
    from torch.nn.modules.instancenorm import _InstanceNorm

    counts: dict[str, int] = {}
    for m in module.modules():
        name = type(m).__name__
        if isinstance(m, _DropoutNd):
            hit = m.p > 0
        elif isinstance(m, _InstanceNorm):  # a subclass of _NormBase: only with running statistics
            hit = m.track_running_stats
        elif isinstance(m, _BatchNorm):
            hit = m.track_running_stats and m.running_mean is not None
        elif isinstance(m, (torch.nn.MultiheadAttention, torch.nn.RReLU)):
            hit = getattr(m, "dropout", 0.0) > 0 if isinstance(m, torch.nn.MultiheadAttention) else True
        else:
            hit = _reads_training(m)
        if hit:
            counts[name] = counts.get(name, 0) + 1
    return [f"{k} x{v}" if v > 1 else k for k, v in counts.items()]


def _reads_training(m: torch.nn.Module) -> bool:
    """A forward() of the user's own code that reads ``self.training`` (functional dropout, a custom
    branch). Installed libraries' modules are judged by the layers they hold: transformers' read it for
    gradient checkpointing, which inference never takes."""
    forward = getattr(type(m), "forward", None)
    code = getattr(forward, "__code__", None)
    if code is None or "training" not in code.co_names:
        return False
    where = code.co_filename.replace("\\", "/")
    return "/site-packages/" not in where and "/dist-packages/" not in where


def eval_note(layers: list[str]) -> str:
    """The note for a model returned in training mode with layers that behave differently in eval."""
    shown = ", ".join(layers[:6]) + (f" and {len(layers) - 6} more kinds" if len(layers) > 6 else "")
    return (
        f"the source returned a model in training mode, with layers that behave differently in eval ({shown}); "
        "bridge switched it to eval() (dropout off, normalisation on its running statistics) before running it: "
        "deploy it in eval mode too"
    )
