#!/usr/bin/env python3
"""A customer's own PyTorch training program, as Tessera runs it (issue 18).

It reads its dataset from /job/inputs, trains a small MLP on the CPU, and speaks Tessera's three
conventions, all optional:
  - progress: JSON lines appended to $TESSERA_PROGRESS_FILE show in `tessera job watch`;
  - checkpoints: it saves to $TESSERA_CHECKPOINT_DIR by writing a temporary name and renaming it
    (a half-written file is never saved), and a requeued attempt finds the newest save restored
    there ($TESSERA_RESTORED_CHECKPOINT names it), so a lost worker costs only the last few steps;
  - outputs: what it leaves in /job/outputs comes back to the customer (`tessera job outputs`).

    python3 train.py --data /job/inputs/train.csv --epochs 30
"""
import argparse
import json
import os
import time

import torch
from torch import nn


def load(path):
    rows = [line.strip().split(",") for line in open(path).read().splitlines()[1:] if line.strip()]
    x = torch.tensor([[float(v) for v in r[:-1]] for r in rows])
    y = torch.tensor([int(r[-1]) for r in rows])
    return x, y


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/job/inputs/train.csv")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--epoch-seconds", type=float, default=0.5, help="pause per epoch, so a demo can be watched")
    args = p.parse_args()
    torch.manual_seed(18)
    torch.set_num_threads(1)
    x, y = load(args.data)
    model = nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    checkpoints = os.environ.get("TESSERA_CHECKPOINT_DIR", "checkpoints")
    os.makedirs(checkpoints, exist_ok=True)
    saved = os.path.join(checkpoints, "state.pt")
    start = 0
    if os.path.exists(saved):
        state = torch.load(saved)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["epoch"]
        print(f"resuming from epoch {start} ({os.environ.get('TESSERA_RESTORED_CHECKPOINT', 'a local checkpoint')})", flush=True)
    else:
        print(f"training from scratch on {len(y)} rows", flush=True)

    progress = os.environ.get("TESSERA_PROGRESS_FILE")
    with torch.no_grad():
        loss = loss_fn(model(x), y).item()
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    for epoch in range(start, args.epochs):
        model.train()
        for i in range(0, len(y), 64):
            optimizer.zero_grad()
            loss = loss_fn(model(x[i:i + 64]), y[i:i + 64])
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            loss = loss_fn(model(x), y).item()
            accuracy = (model(x).argmax(1) == y).float().mean().item()
        print(f"epoch {epoch + 1}/{args.epochs} loss {loss:.4f} accuracy {accuracy:.3f}", flush=True)
        # Committed by a rename: a save the worker takes never holds half a file.
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1}, saved + ".tmp")
        os.replace(saved + ".tmp", saved)
        if progress:
            with open(progress, "a") as f:
                f.write(json.dumps({"progress": (epoch + 1) / args.epochs, "loss": loss}) + "\n")
        time.sleep(args.epoch_seconds)

    os.makedirs("/job/outputs", exist_ok=True)
    torch.save(model.state_dict(), "/job/outputs/model.pt")
    with open("/job/outputs/metrics.json", "w") as f:
        json.dump({"epochs": args.epochs, "loss": loss, "accuracy": accuracy}, f)
    print(f"done: loss {loss:.4f} accuracy {accuracy:.3f}; model in /job/outputs/model.pt", flush=True)


if __name__ == "__main__":
    main()
