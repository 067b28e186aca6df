#!/usr/bin/env python3
"""A small classification dataset for the PyTorch example: points in 8 dimensions, labelled by which
of 4 fixed centres they lie nearest, with noise. Deterministic (seeded), no dependencies.

    python3 make_data.py train.csv 4000
"""
import random
import sys

def main():
    path, rows = sys.argv[1], int(sys.argv[2])
    rng = random.Random(18)
    centres = [[rng.uniform(-2, 2) for _ in range(8)] for _ in range(4)]
    with open(path, "w") as out:
        out.write(",".join([f"x{i}" for i in range(8)] + ["label"]) + "\n")
        for _ in range(rows):
            label = rng.randrange(4)
            point = [c + rng.gauss(0, 0.9) for c in centres[label]]
            out.write(",".join(f"{v:.5f}" for v in point) + f",{label}\n")

if __name__ == "__main__":
    main()
