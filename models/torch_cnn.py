"""PyTorch CNN for 8x8 digits (sklearn's bundled digits stand in for MNIST). Outputs logits.

Factory for bridge: ``models/torch_cnn.py:build`` (weights via ``--weights model.pt``).
Input layout is NCHW: (batch, 1, 8, 8), pixels scaled to [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

BRIDGE_INPUTS = ["x:float32[batch,1,8,8]"]
BRIDGE_INPUT_RANGES = {"x": "0:1"}

NUM_CLASSES = 10
IMAGE_SIZE = 8
# Flattened size after the conv stack. Each unpadded 3x3 conv trims 2 pixels and the 2x2 pool halves:
# 8 -> 6 -> 4 -> 2, so 64 channels * 2 * 2 = 256. The seed document's Flatten -> Linear used a size
# that did not match its actual feature map (the first Linear fails with a shape mismatch);
# for its 28x28 MNIST it would have been 64 * 12 * 12 = 9216.
FLAT = 64 * ((IMAGE_SIZE - 2 - 2) // 2) ** 2  # = 256


class DigitCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(FLAT, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, NUM_CLASSES),  # logits: CrossEntropyLoss applies log-softmax itself
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build(seed: int = 0) -> nn.Module:
    """A fresh, untrained model with seeded initial weights (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DigitCNN()


def to_nchw(images: np.ndarray) -> np.ndarray:
    """(N, 8, 8) images -> (N, 1, 8, 8) float32."""
    return np.ascontiguousarray(images[:, None, :, :], dtype=np.float32)


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Held-out accuracy, evaluated in eval mode (dropout off) without gradients."""
    model.eval()
    with torch.inference_mode():
        pred = model(torch.from_numpy(to_nchw(x))).argmax(dim=1).numpy()
    return float((pred == y).mean())


def train(out_path, seed: int = 0, epochs: int = 15, batch_size: int = 32, lr: float = 1e-3) -> dict:
    """Adam + CrossEntropyLoss on the digits split; saves the state_dict to out_path (.pt)."""
    from models.data import digits_data

    torch.set_num_threads(2)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        x_train, y_train, x_test, y_test = digits_data(seed)
        xt, yt = torch.from_numpy(to_nchw(x_train)), torch.from_numpy(y_train)
        torch.manual_seed(seed)  # dropout masks
        model = build(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = nn.CrossEntropyLoss()
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(xt), generator=gen)
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                optimizer.step()
        test_accuracy = accuracy(model, x_test, y_test)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_path)
    return {"test_accuracy": test_accuracy, "epochs": epochs}
