"""PyTorch linear regression, y = 3x + 2: one nn.Linear(1, 1).

Factory for bridge: ``models/torch_regression.py:build`` (weights via ``--weights model.pt``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

BRIDGE_INPUTS = ["x:float32[batch,1]"]


class LinearRegression(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def build(seed: int = 0) -> nn.Module:
    """A fresh, untrained model with seeded initial weights (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LinearRegression()


def train(out_path, seed: int = 0, epochs: int = 40, batch_size: int = 64, lr: float = 0.1) -> dict:
    """Mini-batch SGD on regression_data; saves the state_dict to out_path (.pt) and returns metrics."""
    from models.data import regression_data

    torch.set_num_threads(2)
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in regression_data(seed))
    model = build(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.inference_mode():
        test_mse = float(loss_fn(model(x_test), y_test))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_path)
    return {
        "weight": float(model.linear.weight.detach().reshape(-1)[0]),
        "bias": float(model.linear.bias.detach().reshape(-1)[0]),
        "test_mse": test_mse,
        "epochs": epochs,
    }
