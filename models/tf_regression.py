"""Keras 3 linear regression, y = 3x + 2, trained with a custom tf.GradientTape loop.

Factory for bridge: ``models/tf_regression.py:build``; the trained model is a ``.keras`` file.
Input "x" of shape (batch, 1); output layer "y".
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf


def build(seed: int = 0) -> keras.Model:
    """A fresh, untrained functional model. Seeds Keras' global RNGs (keras.utils.set_random_seed)."""
    keras.utils.set_random_seed(seed)
    x = keras.Input(shape=(1,), name="x")
    y = keras.layers.Dense(1, name="y")(x)
    return keras.Model(x, y, name="tf_regression")


def train(out_path, seed: int = 0, epochs: int = 40, batch_size: int = 64, lr: float = 0.1) -> dict:
    """Custom mini-batch SGD loop; saves the model to out_path (.keras) and returns metrics."""
    from models.data import regression_data

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    x_train, y_train, x_test, y_test = regression_data(seed)
    model = build(seed)
    optimizer = keras.optimizers.SGD(learning_rate=lr)
    loss_fn = keras.losses.MeanSquaredError()

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            # The loss is computed inside the tape. The seed document computed it after the
            # `with` block, so the tape recorded nothing and every gradient came back None.
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            step(tf.constant(x_train[idx]), tf.constant(y_train[idx]))

    test_mse = float(loss_fn(y_test, model(x_test, training=False)))
    kernel, bias = (np.asarray(v) for v in model.get_layer("y").get_weights())
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(out_path)
    return {
        "weight": float(kernel.reshape(-1)[0]),
        "bias": float(bias.reshape(-1)[0]),
        "test_mse": test_mse,
        "epochs": epochs,
    }
