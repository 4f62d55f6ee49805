"""``python -m clip_perception.cli.train_small_clip``: train the small CLIP on synthetic scenes
(open_clip's ClipLoss, seeded) and write it as a ``local-dir:`` model folder.

The committed model (``models/small_clip``) was made with the defaults (14 CPU-min, one thread):
    OMP_NUM_THREADS=1 taskset -c 0 python -m clip_perception.cli.train_small_clip --out models/small_clip
The recipes compared in docs/results/accuracy.md differ only in ``--vision-width`` and ``--steps``.
"""
from __future__ import annotations

import argparse
import logging
import sys

from ..training.small_clip import TrainSettings, save_small_clip, train


def build_parser() -> argparse.ArgumentParser:
    d = TrainSettings()
    p = argparse.ArgumentParser(prog="train_small_clip", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="model folder to write (local-dir: format)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--pool", type=int, default=d.pool, help="training scenes rendered once")
    p.add_argument("--vision-width", type=int, default=d.vision_width,
                   help="image tower width (the file stays under 4 MiB up to 12)")
    p.add_argument("--threads", type=int, default=d.threads,
                   help="torch threads (1 is fastest on a busy 2-core machine)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = TrainSettings(seed=args.seed, steps=args.steps, batch=args.batch, lr=args.lr,
                             pool=args.pool, threads=args.threads,
                             vision_width=args.vision_width)
    model, record = train(settings)
    print(save_small_clip(model, args.out, record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
