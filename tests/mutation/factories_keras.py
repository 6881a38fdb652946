"""Keras models of the mutation suite (tests/mutation). Tiny and seeded.

``mix`` is the correct base whose export tests/mutation/build.py corrupts (it is also saved as a
.keras file and as a SavedModel). ``softmax1000`` is a reference that proves nothing. ``bn_inference``
and ``bn_training`` are twins with the same weights: the second runs its BatchNormalization in
training mode whatever Keras asks for, so its statistics move with every inference.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402


def mix():
    """Inputs a, b (same shape, different roles) and ids (500-row table); outputs p and q (same shape)."""
    keras.utils.set_random_seed(0)
    a = keras.Input((4,), name="a")
    b = keras.Input((4,), name="b")
    ids = keras.Input((6,), dtype="int64", name="ids")
    e = keras.layers.GlobalAveragePooling1D(name="pool")(keras.layers.Embedding(500, 8, name="emb")(ids))
    h = keras.layers.Add(name="sum")(
        [
            keras.layers.Dense(16, name="la")(a),
            keras.layers.Dense(16, name="lb")(b),
            keras.layers.Dense(16, name="le")(e),
        ]
    )
    h = keras.layers.Activation("tanh", name="tanh")(h)
    return keras.Model(
        [a, b, ids], {"p": keras.layers.Dense(3, name="p")(h), "q": keras.layers.Dense(3, name="q")(h)}, name="mix"
    )


def softmax1000():
    """A random-init classifier head: softmax over 1000 classes, every value 0.001 +- 1e-7."""
    keras.utils.set_random_seed(0)
    x = keras.Input((16,), name="x")
    head = keras.layers.Dense(
        1000,
        activation="softmax",
        name="head",
        kernel_initializer=keras.initializers.RandomNormal(stddev=1e-4),
        bias_initializer="zeros",
    )
    return keras.Model(x, head(x), name="softmax1000")


class ForcedTrainingBN(keras.layers.Layer):
    """BatchNormalization called with training=True whatever the caller asks: batch statistics in
    inference, and the moving statistics updated by every call."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bn = keras.layers.BatchNormalization(name="bn")

    def build(self, input_shape):
        self.bn.build(input_shape)

    def call(self, x, training=None):
        return self.bn(x, training=True)


def _bn_model(forced: bool):
    keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(6, name="d1")(x)
    bn = ForcedTrainingBN(name="forced") if forced else keras.layers.BatchNormalization(name="bn")
    h = bn(h)
    model = keras.Model(x, keras.layers.Dense(3, name="d2")(h), name="bn_forced" if forced else "bn")
    # calibrated statistics, the same in both twins (not the init values 0 and 1)
    layer = bn.bn if forced else bn
    rng = np.random.default_rng(0)
    layer.set_weights(
        [
            rng.uniform(0.5, 1.5, 6).astype("float32"),
            rng.normal(0, 0.1, 6).astype("float32"),
            rng.normal(0, 0.5, 6).astype("float32"),
            rng.uniform(0.5, 2.0, 6).astype("float32"),
        ]
    )
    return model


def bn_inference():
    return _bn_model(False)


def bn_training():
    return _bn_model(True)


# -- hard correct controls: right exports that a careless verifier would fail ------------------------------


def deep():
    """Thirty residual ReLU layers whose activations grow into the tens of thousands (no normalisation): float32
    rounding accumulates through them, and a right export must still pass."""
    keras.utils.set_random_seed(0)
    x = keras.Input((16,), name="x")
    h = x
    for i in range(30):
        h = keras.layers.Add(name=f"res{i}")([h, keras.layers.Dense(16, activation="relu", name=f"d{i}")(h)])
    return keras.Model(x, keras.layers.Identity(name="y")(h), name="deep")


def near_tie():
    """Logits whose two best classes differ by about 1e-6: their argmax flips with rounding."""
    keras.utils.set_random_seed(0)
    x = keras.Input((8,), name="x")
    base = keras.layers.Dense(1, name="lin")(x)
    nudge = 1e-6 * keras.ops.tanh(x[:, :1])
    logits = keras.layers.Concatenate(name="logits")([base, base + nudge, base - 1.0])
    return keras.Model(x, logits, name="near_tie")


def long_sum():
    """A sum over 20,000 elements: the order of the additions differs between runtimes."""
    x = keras.Input((20000,), name="x")
    return keras.Model(x, keras.ops.sum(x * 3.0, axis=1, keepdims=True), name="long_sum")
