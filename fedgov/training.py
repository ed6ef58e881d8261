"""Local training and evaluation loops, used by the ClientApp and the server's evaluation."""

from __future__ import annotations

import torch
from torch import nn

from fedgov.datasets import Dataset


def resolve_device(requested: str) -> torch.device:
    """`cuda` only where it is asked for and available; otherwise the CPU."""
    if requested == "cuda" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def train(
    model: nn.Module,
    data: Dataset,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    device: torch.device,
    seed: int,
    proximal_mu: float = 0.0,
) -> float:
    """Train in place with SGD; with `proximal_mu` > 0 add FedProx's proximal term.

    Returns the mean training loss of the last epoch.
    """
    model.to(device).train()
    x = torch.from_numpy(data.x).to(device)
    y = torch.from_numpy(data.y).to(device)
    global_params = [p.detach().clone() for p in model.parameters()] if proximal_mu > 0 else []
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    last = 0.0
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator).to(device)
        total, count = 0.0, 0
        for start in range(0, len(y), batch_size):
            idx = order[start : start + batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            if proximal_mu > 0:
                prox = sum(((p - g) ** 2).sum() for p, g in zip(model.parameters(), global_params))
                loss = loss + (proximal_mu / 2.0) * prox
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        last = total / max(count, 1)
    return last


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, device: torch.device) -> tuple[float, float]:
    """Return (loss, accuracy) of the model on a split; (0, 0) on an empty split."""
    if len(data) == 0:
        return 0.0, 0.0
    model.to(device).eval()
    x = torch.from_numpy(data.x).to(device)
    y = torch.from_numpy(data.y).to(device)
    logits = model(x)
    loss = float(nn.functional.cross_entropy(logits, y))
    accuracy = float((logits.argmax(1) == y).float().mean())
    return loss, accuracy
