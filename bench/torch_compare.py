#!/usr/bin/env python3
"""The baselines of bench/gpu_bench.cc in PyTorch, on the same GPU and with the same work, so the
ratios of issue 5 can be measured in one session:

  - train_mlp: the same model (tanh hidden layer, linear output, MSE, plain SGD, fp32 master
    weights, bf16 matrix products), the same batch and steps per epoch, each epoch ending with the
    loss over the whole dataset, as the CUDA backend does. Median epoch time.
  - bf16 GEMM 8192^3 with torch.matmul (cuBLAS/cuBLASLt underneath): achieved TFLOP/s.

Usage: python3 bench/torch_compare.py [--dim 4096 --batch 4096 --steps 20 --epochs 5]
"""
import argparse
import statistics
import time

import torch


def epoch_times(dim, batch, steps, epochs):
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(1)
    x = torch.rand(batch * steps, dim, device=dev, generator=g) * 2 - 1
    teacher1 = (torch.rand(dim, 16, device=dev, generator=g) * 2 - 1) / dim ** 0.5 * 1.7
    teacher2 = (torch.rand(16, dim, device=dev, generator=g) * 2 - 1) * 0.5
    y = torch.tanh(x @ teacher1) @ teacher2
    w1 = ((torch.rand(dim, dim, device=dev, generator=g) * 2 - 1) / dim ** 0.5).requires_grad_()
    b1 = torch.zeros(dim, device=dev, requires_grad=True)
    w2 = ((torch.rand(dim, dim, device=dev, generator=g) * 2 - 1) / dim ** 0.5).requires_grad_()
    b2 = torch.zeros(dim, device=dev, requires_grad=True)
    params = [w1, b1, w2, b2]
    opt = torch.optim.SGD(params, lr=0.01)

    def forward(rows):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            h = torch.tanh(rows @ w1 + b1)
            return (h @ w2 + b2).float()

    times = []
    for _ in range(epochs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for s in range(steps):
            rows = x[s * batch:(s + 1) * batch]
            loss = torch.mean((forward(rows) - y[s * batch:(s + 1) * batch]) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            full = torch.mean((forward(x) - y) ** 2).item()  # syncs, as the backend's loss read does
        times.append((time.perf_counter() - start) * 1e3)
    return times[1:], full


def gemm_tflops(n, iterations):
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    torch.matmul(a, b)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iterations):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return 2 * n ** 3 * iterations / seconds / 1e12


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dim", type=int, default=4096)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--gemm-n", type=int, default=8192)
    p.add_argument("--gemm-iterations", type=int, default=50)
    a = p.parse_args()
    print(f"device 0: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    times, loss = epoch_times(a.dim, a.batch, a.steps, a.epochs)
    median = statistics.median(times)
    print(f"torch train_mlp dim {a.dim}, batch {a.batch}, bf16: median epoch {median:.2f} ms "
          f"({a.steps} steps + full-dataset loss), {median / a.steps:.3f} ms/step-equivalent; loss {loss:.5f}")
    print(f"torch bf16 GEMM {a.gemm_n}^3 x {a.gemm_iterations}: {gemm_tflops(a.gemm_n, a.gemm_iterations):.1f} TFLOP/s")


if __name__ == "__main__":
    main()
