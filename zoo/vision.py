"""Image model factories for the coverage zoo (``zoo/coverage.toml``): timm and torchvision
classification, torchvision segmentation and detection.

Random, seeded weights (``pretrained=False`` / ``weights=None``, nothing downloaded). Small inputs
(64x64 where the architecture allows, its fixed size where it does not) keep every model's export
and verification well under a minute on two cores; the batch axis is dynamic, height and width are
fixed (each factory declares its input in ``bridge_inputs``):

    bridge export zoo/vision.py:timm_convnext_atto -o build/convnext_atto

A random-init network is not a trained one, and two things would make its reference vacuous or
ill-scaled, so each factory corrects them the way training would:

* BatchNorm running statistics: fresh ones (mean 0, variance 1) make every BatchNorm an identity,
  and activations then vanish or explode with depth (torchvision MobileNetV3's logits are about
  1e-9, EfficientNet-B0's 1e-14, Inception-v3's 1e9). ``_calibrate_batchnorm`` gives them the
  statistics of two seeded batches.
* All-zero linear layers (torchvision's ViT head): re-initialised with a seeded normal init, so the
  output depends on the input.

Everything is seeded inside ``torch.random.fork_rng`` (the caller's RNG is left as it was), and the
models are returned in eval mode.
"""

from __future__ import annotations

import torch
from _zoo_shared import speed_zoo
from torch import nn

# The speed zoo's corrections, one copy for both zoos (tools/zoo_models.py).
_calibrate_batchnorm = speed_zoo("zoo_models")._calibrate_batchnorm
_meaningful = speed_zoo("zoo_models")._meaningful

SEED = 0
SIZE = 64  # image side where the architecture allows it


def _seeded(build, size: int | None = SIZE) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = build()
        _meaningful(model)
        if size:
            _calibrate_batchnorm(model, (4, 3, size, size))
    return model.eval()


def _image(size: int = SIZE) -> list[str]:
    return [f"x:float32[batch,3,{size},{size}]"]


def _declare(size: int, *factories) -> None:
    for f in factories:
        f.bridge_inputs = _image(size)


# -- timm ------------------------------------------------------------------------------------
def _timm(name: str, size: int = SIZE, **kwargs) -> nn.Module:
    import timm

    return _seeded(lambda: timm.create_model(name, pretrained=False, **kwargs), size)


def timm_convnext_atto():
    return _timm("convnext_atto")


def timm_vit_tiny():
    return _timm("vit_tiny_patch16_224", img_size=SIZE)


def timm_deit_tiny_distilled():
    return _timm("deit_tiny_distilled_patch16_224", img_size=SIZE)


def timm_eva02_tiny():
    # rotary position embeddings; patch 14, so 56 = 4 x 14 instead of 64
    return _timm("eva02_tiny_patch14_224", 56, img_size=56)


def timm_mobilevit_xxs():
    return _timm("mobilevit_xxs")


def timm_efficientvit_b0():
    return _timm("efficientvit_b0")


def timm_edgenext_xx_small():
    return _timm("edgenext_xx_small")


def timm_poolformerv2_s12():
    return _timm("poolformerv2_s12")


def timm_repvgg_a0():
    return _timm("repvgg_a0")


def timm_hgnetv2_b0():
    return _timm("hgnetv2_b0")


def timm_levit_128s():
    # attention biases are sized for the 14x14 grid of a 224 input: the size is fixed
    return _timm("levit_128s", 224)


def timm_fastvit_t8():
    return _timm("fastvit_t8")


def timm_mixer_s16():
    return _timm("mixer_s16_224", img_size=SIZE)


def timm_dla34():
    return _timm("dla34")


def timm_xcit_nano():
    return _timm("xcit_nano_12_p16_224", img_size=SIZE)


def timm_mobilenetv4_conv_small():
    return _timm("mobilenetv4_conv_small")


def timm_ghostnet():
    return _timm("ghostnet_100")


def timm_hrnet_w18_small():
    return _timm("hrnet_w18_small")


_declare(
    SIZE,
    timm_convnext_atto,
    timm_vit_tiny,
    timm_deit_tiny_distilled,
    timm_mobilevit_xxs,
    timm_efficientvit_b0,
    timm_edgenext_xx_small,
    timm_poolformerv2_s12,
    timm_repvgg_a0,
    timm_hgnetv2_b0,
    timm_fastvit_t8,
    timm_mixer_s16,
    timm_dla34,
    timm_xcit_nano,
    timm_mobilenetv4_conv_small,
    timm_ghostnet,
    timm_hrnet_w18_small,
)
_declare(56, timm_eva02_tiny)
_declare(224, timm_levit_128s)


# -- torchvision classification --------------------------------------------------------------
def _tv(name: str, size: int = SIZE, **kwargs) -> nn.Module:
    import torchvision.models as tvm

    return _seeded(lambda: getattr(tvm, name)(weights=None, **kwargs), size)


def tv_resnet18():
    return _tv("resnet18")


def tv_resnext50_32x4d():
    return _tv("resnext50_32x4d")


def tv_mobilenet_v2():
    return _tv("mobilenet_v2")


def tv_mobilenet_v3_small():
    return _tv("mobilenet_v3_small")


def tv_efficientnet_b0():
    return _tv("efficientnet_b0")


def tv_convnext_tiny():
    return _tv("convnext_tiny")


def tv_swin_t():
    return _tv("swin_t")


def tv_densenet121():
    return _tv("densenet121")


def tv_squeezenet1_1():
    return _tv("squeezenet1_1")


def tv_shufflenet_v2_x0_5():
    return _tv("shufflenet_v2_x0_5")


def tv_mnasnet0_5():
    return _tv("mnasnet0_5")


def tv_regnet_y_400mf():
    return _tv("regnet_y_400mf")


def tv_googlenet():
    return _tv("googlenet", aux_logits=False, init_weights=True)


def tv_inception_v3():
    # the stem and the grid reductions need at least 75x75
    return _tv("inception_v3", 96, aux_logits=False, init_weights=True)


def tv_alexnet():
    return _tv("alexnet")


def tv_vit():
    """torchvision's VisionTransformer at a small size (2 layers, width 64, 16x16 patches of 64x64)."""
    import torchvision.models as tvm

    return _seeded(
        lambda: tvm.VisionTransformer(
            image_size=SIZE, patch_size=16, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=100
        )
    )


_declare(
    SIZE,
    tv_resnet18,
    tv_resnext50_32x4d,
    tv_mobilenet_v2,
    tv_mobilenet_v3_small,
    tv_efficientnet_b0,
    tv_convnext_tiny,
    tv_swin_t,
    tv_densenet121,
    tv_squeezenet1_1,
    tv_shufflenet_v2_x0_5,
    tv_mnasnet0_5,
    tv_regnet_y_400mf,
    tv_googlenet,
    tv_alexnet,
    tv_vit,
)
_declare(96, tv_inception_v3)


# -- torchvision segmentation (dict output: "out") -------------------------------------------
SEG_SIZE = 96


def _seg(name: str) -> nn.Module:
    from torchvision.models import segmentation

    return _seeded(
        lambda: getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=21, aux_loss=False),
        SEG_SIZE,
    )


def tv_fcn_resnet50():
    return _seg("fcn_resnet50")


def tv_deeplabv3_mobilenet_v3_large():
    return _seg("deeplabv3_mobilenet_v3_large")


def tv_lraspp_mobilenet_v3_large():
    from torchvision.models import segmentation

    # LR-ASPP has no auxiliary head (no aux_loss argument)
    return _seeded(
        lambda: segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21), SEG_SIZE
    )


_declare(SEG_SIZE, tv_fcn_resnet50, tv_deeplabv3_mobilenet_v3_large)
tv_lraspp_mobilenet_v3_large.bridge_inputs = [f"input:float32[batch,3,{SEG_SIZE},{SEG_SIZE}]"]  # LRASPP.forward(input)


# -- torchvision detection -------------------------------------------------------------------
class Detector(nn.Module):
    """One image (CHW, values 0..1) in; the detections after NMS out: boxes, scores, labels.

    torchvision's detectors take a list of images and return a list of dicts; a deployment exports
    one image per call. The number of detections depends on the data."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> dict:
        out = self.model([image])[0]
        return {"boxes": out["boxes"], "scores": out["scores"], "labels": out["labels"]}


DET_SIZE = 320


def _det(name: str) -> nn.Module:
    from torchvision.models import detection

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = getattr(detection, name)(weights=None, weights_backbone=None, num_classes=91)
        _calibrate_detector(model)
    return Detector(model.eval()).eval()


def _calibrate_detector(model: nn.Module) -> None:
    """BatchNorm statistics of the backbone (the detection heads' own norms are frozen or GroupNorm):
    the backbone in train mode on two seeded batches of images the size the transform produces."""
    body = getattr(model, "backbone")
    bns = [m for m in body.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    body.train()
    with torch.no_grad():
        for _ in range(2):
            body(torch.randn(2, 3, DET_SIZE, DET_SIZE))
    body.eval()


def tv_ssdlite320_mobilenet_v3_large():
    return _det("ssdlite320_mobilenet_v3_large")


def tv_fasterrcnn_mobilenet_v3_large_320_fpn():
    return _det("fasterrcnn_mobilenet_v3_large_320_fpn")


for _f in (tv_ssdlite320_mobilenet_v3_large, tv_fasterrcnn_mobilenet_v3_large_320_fpn):
    _f.bridge_inputs = [f"image:float32[3,{DET_SIZE},{DET_SIZE}]"]
    _f.bridge_input_ranges = {"image": "0:1"}
del _f
