"""Keras factories for models that stress the TensorFlow export path: keras.applications ConvNeXtTiny
(exact GELU: TensorFlow's ``Erfc``, which tf2onnx has no handler for) and VGG16 (0.55 GB of weights,
most of them in two dense layers). Random weights (``weights=None``, nothing downloaded), logits out
(``classifier_activation=None``), seeded with ``keras.utils.set_random_seed``. Input 224x224x3
(NHWC), batch dynamic. Neither model has BatchNormalization, so nothing needs calibrating.
"""

from __future__ import annotations

SEED = 0


def _app(name: str):
    import keras

    keras.utils.set_random_seed(SEED)
    build = getattr(keras.applications, name)
    inp = keras.Input(shape=(224, 224, 3), name="x")
    return build(weights=None, input_tensor=inp, classifier_activation=None)


def convnext_tiny():
    return _app("ConvNeXtTiny")


def vgg16():
    return _app("VGG16")
