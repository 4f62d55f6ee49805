"""Options shared by build_memory and query_memory: the memory, and the node's model and engine
choices with the node's defaults, opened by core.encoders like the node's own engines."""
from __future__ import annotations

import argparse
import logging

from ..core.backends import BACKENDS, PRECISIONS
from ..core.encoders import EncoderSpec, Encoders, open_encoders
from ..core.memory.store import DEFAULT_COLLECTION, DEFAULT_URI
from ..core.preprocess import RESIZE_METHODS

EXIT_INPUT_ERROR = 2


def add_memory_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("memory")
    g.add_argument("--memory", default=DEFAULT_URI, metavar="DIR|FILE.db|URI",
                   help="memory folder (Milvus Lite file DIR/places.db), a '.db' file, or a "
                        "Milvus server URI such as http://fleet-memory:19530 (token from "
                        "$MILVUS_TOKEN) (default: %(default)s)")
    g.add_argument("--collection", default=DEFAULT_COLLECTION,
                   help="collection in the store (default: %(default)s)")


def add_model_arguments(p: argparse.ArgumentParser, required: bool) -> None:
    """The node's model and engine choices, with the node's defaults (core.encoders); without
    ``required`` the model defaults to the one the memory records."""
    g = p.add_argument_group("model and engine (as the node's parameters of the same name)")
    d = EncoderSpec()
    model_default = "%(default)s" if required else "the model the memory was built with"
    g.add_argument("--model", default=d.model if required else None,
                   help=f"open_clip name, 'hf-hub:org/repo' or 'local-dir:/path' "
                        f"(default: {model_default})")
    g.add_argument("--pretrained", default=None,
                   help="pretrained tag or checkpoint (default: the model's own, as the node's "
                        "empty 'pretrained')")
    g.add_argument("--backend", default=d.backend, choices=BACKENDS,
                   help="image encoder backend (default: %(default)s)")
    g.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help="image encoder precision (default: %(default)s)")
    g.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N "
                                                      "(default: %(default)s)")
    g.add_argument("--threads", type=int, default=d.threads,
                   help="CPU engine threads, as 'encoder_threads' (default: every core)")
    g.add_argument("--max-batch", type=int, default=d.max_batch,
                   help="largest batch of one engine call (default: %(default)s)")
    g.add_argument("--preprocess-resize", default=d.preprocess_resize, choices=RESIZE_METHODS,
                   help="frame resize (default: %(default)s)")
    g.add_argument("--cache-dir", default=None,
                   help="engine cache folder (default: $CLIP_PERCEPTION_CACHE_DIR, else "
                        "~/.cache/clip_perception)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def encoder_spec(args, model: str | None = None, pretrained: str | None = None) -> EncoderSpec:
    """The engine options of these arguments (``model``/``pretrained`` override them, e.g. the
    memory's own model)."""
    if args.threads < 0 or args.max_batch < 1:
        raise ValueError(f"--threads must be >= 0 and --max-batch >= 1, got {args.threads} and "
                         f"{args.max_batch}")
    return EncoderSpec(model=model or args.model,
                       pretrained=pretrained if model else args.pretrained,
                       backend=args.backend, precision=args.precision, device=args.device,
                       cache_dir=args.cache_dir, threads=args.threads, max_batch=args.max_batch,
                       preprocess_resize=args.preprocess_resize)


def load_encoders(args, model: str | None = None, pretrained: str | None = None) -> Encoders:
    """The node's engines for these arguments (core.encoders.open_encoders)."""
    return open_encoders(encoder_spec(args, model, pretrained))


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("clip_perception").setLevel(logging.DEBUG if verbose else logging.INFO)
