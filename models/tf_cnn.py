"""Keras 3 CNN for 8x8 digits (sklearn's bundled digits stand in for MNIST). Outputs logits.

Factory for bridge: ``models/tf_cnn.py:build``; the trained model is a ``.keras`` file.
Input "x" is NHWC, (batch, 8, 8, 1), pixels scaled to [0, 1]; output layer "logits".
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

NUM_CLASSES = 10


def build(seed: int = 0) -> keras.Model:
    """A fresh, untrained functional model. Seeds Keras' global RNGs (keras.utils.set_random_seed)."""
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    x = keras.Input(shape=(8, 8, 1), name="x")
    h = layers.Conv2D(32, 3, activation="relu")(x)
    h = layers.Conv2D(64, 3, activation="relu")(h)
    h = layers.MaxPooling2D(2)(h)
    h = layers.Dropout(0.25)(h)
    h = layers.Flatten()(h)
    h = layers.Dense(128, activation="relu")(h)
    h = layers.Dropout(0.5)(h)
    # Logits, no softmax: the seed document put a softmax here *and* trained with
    # from_logits=True, which applies softmax a second time.
    logits = layers.Dense(NUM_CLASSES, name="logits")(h)
    return keras.Model(x, logits, name="tf_cnn")


def to_nhwc(images: np.ndarray) -> np.ndarray:
    """(N, 8, 8) images -> (N, 8, 8, 1) float32."""
    return np.ascontiguousarray(images[..., None], dtype=np.float32)


def train(out_path, seed: int = 0, epochs: int = 15, batch_size: int = 32, lr: float = 1e-3) -> dict:
    """Adam + SparseCategoricalCrossentropy(from_logits=True); saves the model to out_path (.keras)."""
    from models.data import digits_data

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    x_train, y_train, x_test, y_test = digits_data(seed)
    model = build(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(to_nhwc(x_train), y_train, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    logits = model.predict(to_nhwc(x_test), batch_size=256, verbose=0)  # inference: dropout off
    test_accuracy = float((logits.argmax(axis=1) == y_test).mean())
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(out_path)
    return {"test_accuracy": test_accuracy, "epochs": epochs}
