"""Torch eager ViT-B-32 (random weights, batch 1): 2 vs 1 OpenMP threads, spinning vs passive.

    python benchmarks/bench_torch_threads.py [--seconds 8] [--rounds 2]

Why: the torch-backend node ran at a third of raw torch eager. OpenMP threads spin at every
barrier by default; when another thread (executor, DDS, preprocessing, another process) holds
one of the cores, each of the forward's parallel regions waits for a descheduled thread. Each
OMP_WAIT_POLICY value runs in a fresh process (it is read when the OpenMP runtime loads).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure(seconds: float, rounds: int) -> None:
    import numpy as np
    import torch

    from clip_perception.core.backends.torch_backend import TorchImageEncoder
    from clip_perception.core.model import load_clip
    from clip_perception.core.tiny_model import write_random_vit_b_32

    with tempfile.TemporaryDirectory() as tmp:
        encoder = TorchImageEncoder(load_clip(write_random_vit_b_32(Path(tmp) / "vit")))
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)

    def rate(threads: int) -> float:
        torch.set_num_threads(threads)
        encoder.encode_images(x)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            encoder.encode_images(x)
            n += 1
        return n / (time.perf_counter() - start)

    policy = os.environ.get("OMP_WAIT_POLICY", "(default: spin)")
    for r in range(rounds):
        print(f"round {r} OMP_WAIT_POLICY={policy}: 2 threads {rate(2):.2f} img/s, 1 thread "
              f"{rate(1):.2f} img/s; load average {os.getloadavg()[0]:.1f}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        measure(args.seconds, args.rounds)
        return 0
    for policy in (None, "PASSIVE"):
        env = dict(os.environ)
        env.pop("OMP_WAIT_POLICY", None)
        if policy:
            env["OMP_WAIT_POLICY"] = policy
        subprocess.run([sys.executable, __file__, "--child", "--seconds", str(args.seconds),
                        "--rounds", str(args.rounds)], env=env, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
