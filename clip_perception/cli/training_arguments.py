"""Command-line options shared by train_adapter and evaluate_prompts."""
from __future__ import annotations

import argparse
import logging

from ..core.backends import BACKENDS, PRECISIONS
from ..core.encoders import DEFAULT_MODEL
from ..core.model import default_pretrained
from ..core.preprocess import DEFAULT_RESIZE, RESIZE_METHODS
from ..core.prompts import DEFAULT_TEMPLATES, parse_label_prompts
from ..training.data import TrainingInputError
from ..training.engine import ModelSpec, PromptSpec
from ..training.sources import SourceSpec


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=DEFAULT_MODEL,
                   help="open_clip model name, 'hf-hub:org/repo' or 'local-dir:/path' (default: %(default)s)")
    g.add_argument("--pretrained", default=None,
                   help="open_clip pretrained tag or checkpoint path (default: the model's "
                        "own, as the node's empty 'pretrained': datacomp_xl_s13b_b90k for "
                        "ViT-B-32, none for local-dir:/hf-hub:)")
    g.add_argument("--device", default="auto",
                   help="torch device, as the node's 'device': auto (cuda when usable, else "
                        "cpu), cpu, cuda, cuda:N (default: %(default)s)")
    # Features come from the engine the node will serve: give the node's backend/precision.
    g.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="image encoder backend, as the node's 'backend' parameter: the head is "
                        "trained and judged on the features the node will compute (default: %(default)s)")
    g.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="image encoder precision, as the node's 'precision' parameter (default: %(default)s)")
    g.add_argument("--threads", type=int, default=0,
                   help="onnxruntime threads, as the node's 'encoder_threads' (default: every core)")
    g.add_argument("--preprocess-resize", default=DEFAULT_RESIZE, choices=RESIZE_METHODS,
                   help="frame resize, as the node's 'preprocess_resize' (default: %(default)s)")
    g.add_argument("--cache-dir", default=None,
                   help="artifact and feature cache folder (default: "
                        "$CLIP_PERCEPTION_CACHE_DIR, else ~/.cache/clip_perception)")
    g.add_argument("--no-feature-cache", action="store_true",
                   help="encode every frame again instead of reading/writing the feature cache")
    g.add_argument("--encode-batch", type=int, default=32, help="images per encoder call (default: %(default)s)")


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("frames and labels")
    g.add_argument("--bag", action="append", default=[], metavar="PATH",
                   help="rosbag2 folder (mcap or sqlite3) or ROS 1 .bag file; repeatable")
    g.add_argument("--topic", action="append", default=[], metavar="TOPIC",
                   help="image topic (sensor_msgs/Image or CompressedImage) in the bags; repeatable")
    g.add_argument("--labels-file", metavar="YAML",
                   help="time intervals per bag -> label (seconds from each bag's start)")
    g.add_argument("--label-topic", metavar="TOPIC",
                   help="std_msgs/String topic in the bags; each label holds until the next "
                        "(an empty string clears it)")
    g.add_argument("--image-folder", action="append", default=[], metavar="DIR",
                   help="folder with one subfolder of images per label; repeatable")
    g.add_argument("--labels", nargs="+", metavar="LABEL",
                   help="label set (default: every label found in the sources); frames with "
                        "other labels are skipped and counted")
    g.add_argument("--min-interval", type=float, default=0.0, metavar="S",
                   help="minimum seconds between kept frames of one topic (default: keep all)")
    g.add_argument("--max-per-label", type=int, default=0, metavar="N",
                   help="at most N frames per label, evenly spread over time (default: no limit)")
    c = p.add_argument_group("real lighting conditions")
    c.add_argument("--condition", action="append", default=[], metavar="SOURCE=NAME",
                   help="lighting condition of a bag or image folder (by path, name or stem), e.g. "
                        "kitchen_night.mcap=night; repeatable")
    c.add_argument("--condition-topic", metavar="TOPIC",
                   help="std_msgs/String topic in the bags naming the current condition (holds "
                        "until the next; overrides --condition while it has a value)")
    c.add_argument("--condition-folders", action="append", default=[], metavar="DIR",
                   help="DIR/<condition>/<label>/<images>: one image folder per condition; repeatable")


def add_prompt_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prompts")
    g.add_argument("--templates", nargs="+", default=list(DEFAULT_TEMPLATES), metavar="TEMPLATE",
                   help="prompt templates with one '{}' for the label (default: the package's "
                        "7-template ensemble)")
    g.add_argument("--label-prompt", action="append", default=[], metavar="LABEL=PROMPT[|PROMPT]",
                   help="replace the templates for one label, e.g. "
                        "'strawberry=a photo of a red strawberry, a type of fruit'; repeatable")


def add_common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def model_spec(args) -> ModelSpec:
    pretrained = default_pretrained(args.model, args.pretrained)
    if args.encode_batch < 1:
        raise TrainingInputError(f"--encode-batch must be >= 1, got {args.encode_batch}")
    if args.threads < 0:
        raise TrainingInputError(f"--threads must be >= 0, got {args.threads}")
    return ModelSpec(model=args.model, pretrained=pretrained, device=args.device,
                     backend=args.backend, precision=args.precision, threads=args.threads,
                     cache_dir=args.cache_dir, use_feature_cache=not args.no_feature_cache,
                     encode_batch=args.encode_batch, preprocess_resize=args.preprocess_resize)


def parse_conditions(entries) -> dict[str, str]:
    """``SOURCE=NAME`` entries -> {source: name}."""
    out = {}
    for entry in entries:
        source, sep, name = entry.partition("=")
        if not sep or not source.strip() or not name.strip():
            raise TrainingInputError(f"--condition expects SOURCE=NAME (e.g. kitchen_night.mcap="
                                     f"night), got {entry!r}")
        if source.strip() in out and out[source.strip()] != name.strip():
            raise TrainingInputError(f"--condition gives {source.strip()!r} two conditions: "
                                     f"{out[source.strip()]!r} and {name.strip()!r}")
        out[source.strip()] = name.strip()
    return out


def source_spec(args) -> SourceSpec:
    return SourceSpec(bags=args.bag, topics=args.topic, labels_file=args.labels_file,
                      label_topic=args.label_topic, folders=args.image_folder, labels=args.labels,
                      min_interval_s=args.min_interval, max_per_label=args.max_per_label,
                      conditions=parse_conditions(args.condition),
                      condition_topic=args.condition_topic,
                      condition_folders=args.condition_folders)


def prompt_spec(args) -> PromptSpec:
    try:
        overrides = parse_label_prompts(args.label_prompt)
    except ValueError as exc:
        raise TrainingInputError(str(exc)) from exc
    return PromptSpec(templates=tuple(args.templates), label_prompts=overrides)


def setup_logging(args) -> None:
    # open_clip logs every loading step at INFO on the root logger: keep the root at WARNING
    # and show this package's own INFO messages.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("clip_perception").setLevel(logging.DEBUG if args.verbose else logging.INFO)
