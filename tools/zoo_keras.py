"""Keras factories for the CPU benchmark zoo (``tools/zoo.py``): keras.applications with random
weights (``weights=None``, nothing downloaded) and logits out (``classifier_activation=None``: a
softmax over 1000 classes of a random model is nearly uniform, and a comparison of near-constant
probabilities says little). Seeded with ``keras.utils.set_random_seed``. BatchNormalization statistics are
calibrated on one seeded batch (see ``_calibrate_batchnorm``). Input 224x224x3 (NHWC),
batch dynamic; bridge reads the input specs from the Keras model itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

SEED = 0
ROOT = Path(__file__).resolve().parent.parent


def _app(name: str):
    import keras

    keras.utils.set_random_seed(SEED)
    build = getattr(keras.applications, name)
    inp = keras.Input(shape=(224, 224, 3), name="x")
    model = build(weights=None, input_tensor=inp, classifier_activation=None)
    _calibrate_batchnorm(model)
    _freeze_normalization(model)
    return model


def _freeze_normalization(model) -> None:
    """keras.layers.Normalization (EfficientNet's input scaling) keeps its mean and variance as eager
    tensors that a tf.function captures: tf2onnx turns such captures into extra graph inputs
    (bridge refuses the graph: "constants leaked into inputs"). As numpy arrays they become constants."""
    import keras
    import numpy as np

    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Normalization) and layer.mean is not None:
            layer.mean = np.asarray(layer.mean)
            layer.variance = np.asarray(layer.variance)


def _calibrate_batchnorm(model, batch: int = 4) -> None:
    """Give BatchNormalization layers the statistics of the activations they see, as training would:
    one seeded batch in training mode with momentum 0 (moving = batch statistics). Fresh Keras
    statistics (mean 0, variance 1) make every BatchNormalization an identity, and the activations of
    a deep random network then vanish or explode with depth (a vacuous or ill-scaled reference).
    Input values: uniform 0..255, the pixel range keras.applications models expect."""
    import keras
    import numpy as np

    bns = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return
    saved = [layer.momentum for layer in bns]
    for layer in bns:
        layer.momentum = 0.0
    x = np.random.default_rng(SEED).uniform(0, 255, (batch, *model.input_shape[1:])).astype("float32")
    model(x, training=True)
    for layer, m in zip(bns, saved):
        layer.momentum = m


def keras_resnet50():
    return _app("ResNet50")


def keras_mobilenet_v2():
    return _app("MobileNetV2")


def keras_efficientnet_b0():
    return _app("EfficientNetB0")


def keras_tf_cnn():
    """The reference Keras CNN: trained (build/reference/tf_cnn.keras) when the reference job ran."""
    import keras

    trained = ROOT / "build" / "reference" / "tf_cnn.keras"
    if trained.is_file():
        return keras.models.load_model(trained, safe_mode=True, compile=False)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from models.tf_cnn import build

    return build(SEED)
