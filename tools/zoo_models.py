"""PyTorch factories for the CPU benchmark zoo (``tools/zoo.py``): random, seeded weights, no downloads.

Each factory declares its inputs as function attributes (``bridge_inputs``), which ``bridge`` reads,
so ``bridge export tools/zoo_models.py:resnet50 -o out`` needs no ``--input``.

Random initialisation can make a reference vacuous (torchvision's ViT zero-initialises its
classification head, so every logit is 0 and a parity check cannot fail). ``_meaningful`` gives every
Linear layer whose weight is all zeros a seeded normal init (std 0.02) and every zero bias of such a
layer a small seeded one, so the outputs of every zoo model depend on the input and on every layer.
BatchNorm networks (ResNet50, MobileNetV3, EfficientNet) get their running statistics from two seeded
random batches (``_calibrate_batchnorm``), as a trained network has statistics matching its
activations; without that their logits are below 1e-9 or around 100. Everything is seeded with
``torch.manual_seed`` inside ``torch.random.fork_rng`` (the caller's RNG is
left as it was); factories return models in eval mode.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

SEED = 0
ROOT = Path(__file__).resolve().parent.parent


def _seeded(build, seed: int = SEED, calibrate: tuple | None = None) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
        _meaningful(model)
        if calibrate is not None:
            _calibrate_batchnorm(model, calibrate)
    return model.eval()


def _calibrate_batchnorm(model: nn.Module, shape: tuple, batches: int = 2) -> None:
    """Give BatchNorm layers the running statistics of the activations they actually see, as training
    would: cumulative mean/var over ``batches`` seeded standard-normal batches of ``shape``, in train
    mode without gradients. With torchvision's fresh statistics (mean 0, var 1) every BatchNorm is an
    identity, and activations shrink or grow geometrically with depth: MobileNetV3's and
    EfficientNet's logits come out below 1e-9 (a vacuous reference), ResNet50's around 100."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(*shape))
    model.eval()


def _meaningful(model: nn.Module) -> None:
    """Re-initialise all-zero Linear weights (e.g. ViT's head) with a seeded normal init."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear) and not bool(m.weight.any()):
                nn.init.normal_(m.weight, std=0.02)
                if m.bias is not None and not bool(m.bias.any()):
                    nn.init.normal_(m.bias, std=0.02)


IMAGE = ["x:float32[batch,3,224,224]"]


def _tv(name: str):
    import torchvision.models as tvm

    return getattr(tvm, name)(weights=None)


CALIBRATION = (4, 3, 224, 224)


def resnet50() -> nn.Module:
    return _seeded(lambda: _tv("resnet50"), calibrate=CALIBRATION)


def mobilenet_v3_large() -> nn.Module:
    return _seeded(lambda: _tv("mobilenet_v3_large"), calibrate=CALIBRATION)


def efficientnet_b0() -> nn.Module:
    return _seeded(lambda: _tv("efficientnet_b0"), calibrate=CALIBRATION)


def convnext_tiny() -> nn.Module:
    return _seeded(lambda: _tv("convnext_tiny"))


def vit_b_16() -> nn.Module:
    return _seeded(lambda: _tv("vit_b_16"))  # the head is zero-initialised by torchvision: _meaningful fixes it


def swin_t() -> nn.Module:
    return _seeded(lambda: _tv("swin_t"))


for _f in (resnet50, mobilenet_v3_large, efficientnet_b0, convnext_tiny, vit_b_16, swin_t):
    _f.bridge_inputs = IMAGE


# -- sequence models ---------------------------------------------------------------------------
TRANSFORMER_SEQ = 128
TRANSFORMER_DIM = 512
TRANSFORMER_HEADS = 8


class Encoder(nn.Module):
    """nn.TransformerEncoder, d_model 512, 8 heads, 6 layers, FFN 2048, batch_first, post-norm."""

    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            TRANSFORMER_DIM, TRANSFORMER_HEADS, dim_feedforward=2048, dropout=0.1, batch_first=True
        )
        # enable_nested_tensor only matters with a padding mask; off keeps the eager path plain
        self.encoder = nn.TransformerEncoder(layer, num_layers=6, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


def transformer_encoder() -> nn.Module:
    return _seeded(Encoder)


transformer_encoder.bridge_inputs = [f"x:float32[batch,{TRANSFORMER_SEQ},{TRANSFORMER_DIM}]"]


class LSTMHead(nn.Module):
    """2-layer LSTM (input 64, hidden 256, batch_first) and a linear head on the last step."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(64, 256, num_layers=2, batch_first=True)
        self.head = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def lstm() -> nn.Module:
    return _seeded(LSTMHead)


LSTM_SEQ = 64
lstm.bridge_inputs = [f"x:float32[batch,{LSTM_SEQ},64]"]


# -- the reference CNN (models/torch_cnn.py), with its trained weights when the reference job ran ----
def torch_cnn() -> nn.Module:
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from models.torch_cnn import build

    model = build(SEED)
    trained = ROOT / "build" / "reference" / "torch_cnn.pt"
    if trained.is_file():
        model.load_state_dict(torch.load(trained, weights_only=True, map_location="cpu"))
    return model.eval()


torch_cnn.bridge_inputs = ["x:float32[batch,1,8,8]"]
torch_cnn.bridge_input_ranges = {"x": "0:1"}
