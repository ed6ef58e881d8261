"""The model for each bundled dataset: small and real, shared by ServerApp and ClientApp."""

from __future__ import annotations

import torch
from torch import nn

from governance.errors import UsageError


class TabularMLP(nn.Module):
    """Two-layer MLP for tabular data such as breast-cancer."""

    def __init__(self, num_features: int, num_classes: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(num_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class SmallCNN(nn.Module):
    """A two-convolution CNN for 8x8 greyscale digits."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_model(dataset: str, seed: int = 0) -> nn.Module:
    """Build the dataset's model with seeded initial weights, so runs are reproducible."""
    torch.manual_seed(seed)
    if dataset == "breast-cancer":
        return TabularMLP(num_features=30, num_classes=2)
    if dataset == "digits":
        return SmallCNN(num_classes=10)
    raise UsageError(f"no model for dataset {dataset!r}")
