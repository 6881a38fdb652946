"""Keras factories for the coverage zoo (``zoo/coverage.toml``): keras.applications and recurrent
models (LSTM, GRU, SimpleRNN, Bidirectional), all functional, with named inputs.

keras.applications models are built with ``weights=None`` (random, seeded with
``keras.utils.set_random_seed``; nothing downloaded) and ``classifier_activation=None``: a random
network's softmax over 1000 classes is about 1/1000 everywhere, a reference no comparison can fail
(bridge calls it inconclusive), so the zoo compares logits. Inputs are small (64x64x3 where the
architecture allows it), NHWC, batch dynamic, pixel values 0..255 as keras.applications expect
(``bridge_input_ranges``). BatchNormalization statistics are calibrated on one seeded batch (fresh
ones make every BatchNormalization an identity, and a deep random network's activations then vanish
or explode).

The recurrent models take ``x`` (batch x time x features, time dynamic) or token ids
(``input_ids``, feeding an Embedding: bridge draws them over the whole vocabulary).

    bridge export zoo/keras_apps.py:keras_mobilenet_v2 -o build/keras_mobilenet_v2
"""

from __future__ import annotations

from _zoo_shared import speed_zoo

# The speed zoo's corrections, one copy for both zoos (tools/zoo_keras.py).
_calibrate_batchnorm = speed_zoo("zoo_keras")._calibrate_batchnorm
_freeze_normalization = speed_zoo("zoo_keras")._freeze_normalization

SEED = 0
SIZE = 64


def _app(name: str, size: int = SIZE, **kwargs):
    import keras

    keras.utils.set_random_seed(SEED)
    inp = keras.Input(shape=(size, size, 3), name="x")
    model = getattr(keras.applications, name)(weights=None, input_tensor=inp, classifier_activation=None, **kwargs)
    _calibrate_batchnorm(model)
    _freeze_normalization(model)
    return model


def _pixels(size: int, *factories) -> None:
    for f in factories:
        f.bridge_inputs = [f"x:float32[batch,{size},{size},3]"]
        f.bridge_input_ranges = {"x": "0:255"}


# -- keras.applications ----------------------------------------------------------------------
def keras_mobilenet():
    return _app("MobileNet", alpha=0.25)


def keras_mobilenet_v2():
    return _app("MobileNetV2", alpha=0.35)


def keras_mobilenet_v3_small():
    return _app("MobileNetV3Small", minimalistic=False)


def keras_resnet50():
    return _app("ResNet50")


def keras_resnet50_v2():
    return _app("ResNet50V2")


def keras_densenet121():
    return _app("DenseNet121")


def keras_efficientnet_b0():
    return _app("EfficientNetB0")


def keras_efficientnet_v2_b0():
    return _app("EfficientNetV2B0")


def keras_mobilenet_v3_large():
    return _app("MobileNetV3Large", minimalistic=True)


def keras_inception_v3():
    # the stem and the grid reductions need at least 75x75
    return _app("InceptionV3", 96)


def keras_xception():
    # at least 71x71
    return _app("Xception", 96)


def keras_nasnet_mobile():
    return _app("NASNetMobile", 96)


def keras_convnext_tiny():
    return _app("ConvNeXtTiny")


def keras_vgg16():
    return _app("VGG16")


_pixels(
    SIZE,
    keras_mobilenet,
    keras_mobilenet_v2,
    keras_mobilenet_v3_small,
    keras_resnet50,
    keras_resnet50_v2,
    keras_densenet121,
    keras_efficientnet_b0,
    keras_efficientnet_v2_b0,
    keras_mobilenet_v3_large,
    keras_convnext_tiny,
    keras_vgg16,
)
_pixels(96, keras_inception_v3, keras_xception, keras_nasnet_mobile)


# -- recurrent models ------------------------------------------------------------------------
FEATURES = 16
VOCAB = 1000


def _seeded():
    import keras

    keras.utils.set_random_seed(SEED)
    return keras


def keras_lstm():
    """LSTM over a sequence, a dense head on its last state."""
    keras = _seeded()
    x = keras.Input(shape=(None, FEATURES), name="x")
    h = keras.layers.LSTM(32)(x)
    return keras.Model(x, keras.layers.Dense(5, name="logits")(h), name="lstm")


def keras_gru_sequence():
    """GRU returning every step, a dense layer per step (sequence labelling)."""
    keras = _seeded()
    x = keras.Input(shape=(None, FEATURES), name="x")
    h = keras.layers.GRU(32, return_sequences=True)(x)
    return keras.Model(x, keras.layers.Dense(8, name="tags")(h), name="gru_sequence")


def keras_bidirectional():
    """A bidirectional LSTM then a bidirectional GRU, then a dense head."""
    keras = _seeded()
    x = keras.Input(shape=(None, FEATURES), name="x")
    h = keras.layers.Bidirectional(keras.layers.LSTM(16, return_sequences=True))(x)
    h = keras.layers.Bidirectional(keras.layers.GRU(16))(h)
    return keras.Model(x, keras.layers.Dense(5, name="logits")(h), name="bidirectional")


def keras_stacked_rnn():
    """SimpleRNN, then LSTM, then GRU, each returning sequences, and the last state out too."""
    keras = _seeded()
    x = keras.Input(shape=(None, FEATURES), name="x")
    h = keras.layers.SimpleRNN(24, return_sequences=True)(x)
    h = keras.layers.LSTM(24, return_sequences=True)(h)
    seq, state = keras.layers.GRU(24, return_sequences=True, return_state=True)(h)
    return keras.Model(x, {"sequence": seq, "state": state}, name="stacked_rnn")


def keras_conv_gru():
    """A 1-D convolution front end over the time axis, then a GRU."""
    keras = _seeded()
    x = keras.Input(shape=(None, FEATURES), name="x")
    h = keras.layers.Conv1D(32, 3, padding="same", activation="relu")(x)
    h = keras.layers.GRU(32)(h)
    return keras.Model(x, keras.layers.Dense(5, name="logits")(h), name="conv_gru")


def keras_text_lstm():
    """Token ids -> Embedding -> LSTM -> dense head (a text classifier)."""
    keras = _seeded()
    ids = keras.Input(shape=(None,), dtype="int32", name="input_ids")
    h = keras.layers.Embedding(VOCAB, 32)(ids)
    h = keras.layers.LSTM(32)(h)
    return keras.Model(ids, keras.layers.Dense(3, name="logits")(h), name="text_lstm")


for _f in (keras_lstm, keras_gru_sequence, keras_bidirectional, keras_stacked_rnn, keras_conv_gru):
    _f.bridge_inputs = [f"x:float32[batch,time,{FEATURES}]"]
keras_text_lstm.bridge_inputs = ["input_ids:int32[batch,time]"]
del _f
