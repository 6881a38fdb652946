"""Seeded, offline data for the reference models. numpy and scikit-learn only: no framework import.

MNIST cannot be downloaded here, so the CNNs use scikit-learn's bundled digits
(1797 8x8 greyscale images, 10 classes, pixel values 0..16).
"""

from __future__ import annotations

import numpy as np

TEST_FRACTION = 0.2


def regression_data(seed: int = 0, n: int = 1000):
    """y = 3x + 2 + N(0, 0.1) noise, x uniform in [-1, 1). Returns (x_train, y_train, x_test, y_test),
    float32, each of shape (N, 1); the last 20% of the n samples are held out."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, 1)).astype(np.float32)
    y = (3.0 * x + 2.0 + rng.normal(0.0, 0.1, size=(n, 1))).astype(np.float32)
    cut = int(round(n * (1 - TEST_FRACTION)))
    return x[:cut], y[:cut], x[cut:], y[cut:]


def digits_data(seed: int = 0):
    """Stratified 80/20 split of sklearn's digits. Returns (x_train, y_train, x_test, y_test):
    images float32 in [0, 1] of shape (N, 8, 8), labels int64 of shape (N,)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=seed
    )
    return x_train, y_train, x_test, y_test
