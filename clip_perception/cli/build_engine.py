"""Pre-build and verify the TensorRT engine of a CLIP image tower; print where it is cached.

    ros2 run clip_perception build_engine --model ViT-B-32 --precision fp16 --max-batch 4

Exit codes: 0 built/loaded and verified, 2 TensorRT/CUDA missing or bad arguments,
3 build failed, 4 engine refused by verification, 5 model could not be loaded.
"""
from __future__ import annotations

import argparse
import logging
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="build_engine", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True,
                   help="open_clip model name (ViT-B-32), 'hf-hub:org/repo' or 'local-dir:/path'")
    p.add_argument("--pretrained", default=None,
                   help="open_clip pretrained tag or checkpoint path (default: the model's own, "
                        "as the node's empty 'pretrained')")
    p.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    p.add_argument("--max-batch", type=int, default=8, help="largest batch the engine accepts")
    p.add_argument("--cache-dir", default=None,
                   help="default: $CLIP_PERCEPTION_CACHE_DIR, else ~/.cache/clip_perception")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if a cached engine exists")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.max_batch < 1:
        p.error(f"--max-batch must be >= 1, got {args.max_batch}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from ..core.backends import BackendUnavailable
    from ..core.backends import tensorrt_backend as trtb
    from ..core.backends.engine_cache import ArtifactBuildFailed, ArtifactRefused
    from ..core.encoders import EncoderSpec, load_model
    from ..core.model import ModelLoadError

    # Check TensorRT/CUDA before loading a model: a missing library should fail in a second.
    try:
        where = trtb.preflight(args.precision)
    except BackendUnavailable as exc:
        print(f"build_engine: cannot build a TensorRT engine here: {exc}", file=sys.stderr)
        return 2
    try:
        # the weights the node loads for the same model/pretrained (core.encoders)
        clip = load_model(EncoderSpec(model=args.model, pretrained=args.pretrained,
                                      device="cuda"))
    except ModelLoadError as exc:
        print(f"build_engine: {exc}", file=sys.stderr)
        return 5
    print(f"building/loading {args.precision} engine for {clip.identifier} with {where} "
          f"(batch 1..{args.max_batch}); a first build takes minutes")
    try:
        result = trtb.load_or_build_engine(clip, args.precision, args.max_batch, args.cache_dir,
                                           force_rebuild=args.rebuild)
    except ArtifactRefused as exc:
        print(f"build_engine: engine refused: {exc}", file=sys.stderr)
        return 4
    except ArtifactBuildFailed as exc:
        print(f"build_engine: {exc}", file=sys.stderr)
        return 3
    except BackendUnavailable as exc:
        print(f"build_engine: {exc}", file=sys.stderr)
        return 2
    for event in result.events:
        print(f"  {event}")
    print(f"engine: {result.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
