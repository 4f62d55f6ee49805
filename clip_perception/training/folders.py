"""Labelled frames from image folders: ``root/<label>/*.jpg|png|...`` (one subfolder per
label), in takes: numbered file sequences (``take3_0001.png``...) or ``root/<label>/<take>/``."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..core.frame_sources import list_images
from ..core.image_decode import FrameDecodeError, compressed_to_rgb
from .data import Candidate, Frame, ReadStats, TrainingInputError
from .labels import TakeCounter


_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def folder_take_key(relative: Path, previous: tuple | None) -> tuple:
    """Which take a file belongs to. Files in a subfolder of the label folder form one take per
    subfolder; files directly in it form a take per run of consecutive numbers with the same
    prefix (``take_0007.png`` follows ``take_0006.png``); an unnumbered file is a take alone."""
    if len(relative.parts) > 2:  # <label>/<take folder>/.../<file>
        return ("dir", relative.parts[1])
    m = _NUMBERED.match(relative.stem)
    if m is None:
        return ("file", relative.name)
    prefix, number = m.group(1), int(m.group(2))
    if previous is not None and previous[0] == "seq" and previous[1] == prefix \
            and previous[3] == number - 1:
        return ("seq", prefix, previous[2], number)
    return ("seq", prefix, number, number)  # (kind, prefix, first number, last number)


def subfolders(root: str | os.PathLike, what: str, layout: str) -> list[Path]:
    """The subfolders of ``root`` in name order; an error naming ``layout`` if there are none."""
    root = Path(os.path.expanduser(str(root)))
    if not root.is_dir():
        raise TrainingInputError(f"{what} not found: {root}")
    subs = sorted(p for p in root.iterdir() if p.is_dir())
    if not subs:
        raise TrainingInputError(f"{what} {root} has no subfolders; expected {root}/{layout}")
    return subs


def scan_folder(root: str | os.PathLike, stats: ReadStats | None = None,
                condition: str = "") -> list[Candidate]:
    """One candidate per image file; the subfolder name is the label. Folder images carry no
    time (``timed=False``); their takes come from the file layout (``folder_take_key``)."""
    stats = stats if stats is not None else ReadStats()
    root = Path(os.path.expanduser(str(root)))
    subdirs = subfolders(root, "image folder", "<label>/<images> (one subfolder per label, e.g. cup/*.jpg)")
    out = []
    takes = TakeCounter()
    for sub in subdirs:
        key = None
        for i, f in enumerate(list_images(sub, recursive=True)):
            stats.messages_seen += 1
            rel = f.relative_to(root)
            key = folder_take_key(rel, key)
            take_id = key if key[0] != "seq" else key[:3]
            out.append(Candidate(str(root), str(rel), i, sub.name, timed=False,
                                 take=takes.number((sub.name, take_id)), condition=condition))
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
            frames.append(Frame.of(c, hashlib.blake2b(data, digest_size=16).hexdigest(),
                                   prepare(compressed_to_rgb("", data))))
        except (OSError, FrameDecodeError) as exc:
            stats.add_corrupt(str(path), str(exc))
        if progress is not None:
            progress.update(1)
    return frames
