"""Labelled frames from image folders: ``root/<label>/*.jpg|png|...`` (one subfolder per label)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..core.frame_sources import list_images
from ..core.image_decode import FrameDecodeError, compressed_to_rgb
from .data import Candidate, Frame, ReadStats, TrainingInputError


def scan_folder(root: str | os.PathLike, stats: ReadStats | None = None) -> list[Candidate]:
    """One candidate per image file; the subfolder name is the label. Folder images carry no
    time, so each is its own split block (``timed=False``)."""
    stats = stats if stats is not None else ReadStats()
    root = Path(os.path.expanduser(str(root)))
    if not root.is_dir():
        raise TrainingInputError(f"image folder not found: {root}")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not subdirs:
        raise TrainingInputError(f"image folder {root} has no subfolders; expected one subfolder "
                                 f"per label (e.g. {root}/cup/*.jpg)")
    out = []
    for sub in subdirs:
        files = list_images(sub, recursive=True)
        for i, f in enumerate(files):
            stats.messages_seen += 1
            out.append(Candidate(str(root), str(f.relative_to(root)), i, sub.name, timed=False))
    return out


def decode_folder(root: str | os.PathLike, selected: Sequence[Candidate],
                  prepare: Callable[[np.ndarray], np.ndarray], *, stats: ReadStats | None = None,
                  progress=None) -> list[Frame]:
    stats = stats if stats is not None else ReadStats()
    root_s = str(Path(os.path.expanduser(str(root))))
    frames = []
    for c in selected:
        if c.source != root_s:
            continue
        path = Path(root_s) / c.topic
        try:
            data = path.read_bytes()
            frames.append(Frame(c.source, c.topic, c.t_ns, c.label,
                                hashlib.blake2b(data, digest_size=16).hexdigest(),
                                prepare(compressed_to_rgb("", data)), timed=False))
        except (OSError, FrameDecodeError) as exc:
            stats.add_corrupt(str(path), str(exc))
        if progress is not None:
            progress.update(1)
    return frames
