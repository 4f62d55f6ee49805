"""Stream RGB frames from an image folder, a video file or a rosbag (for the demo and tools).

Each source yields ``(rgb HxWx3 uint8, name)``; nothing needs ROS installed (bags are read with
the ``rosbags`` library). Errors say what was given and what was expected.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np

from .image_decode import FrameDecodeError, compressed_to_rgb, raw_to_rgb
from .errors import ClipPerceptionError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg")
BAG_IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


class FrameSourceError(ClipPerceptionError, ValueError):
    """A frame source cannot be opened or read; the message says why."""


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files (by suffix, case-insensitive) of ``folder`` in name order; with
    ``recursive`` also those of its subfolders, ordered by their path."""
    folder = Path(folder)
    entries = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def folder_frames(folder: str | os.PathLike) -> Iterator[tuple[np.ndarray, str]]:
    folder = Path(os.path.expanduser(str(folder)))
    if not folder.is_dir():
        raise FrameSourceError(f"image folder not found: {folder}")
    files = list_images(folder)
    if not files:
        raise FrameSourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FrameSourceError(f"cannot read image {path}")
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), path.name


def video_frames(path: str | os.PathLike) -> Iterator[tuple[np.ndarray, str]]:
    path = Path(os.path.expanduser(str(path)))
    if not path.is_file():
        raise FrameSourceError(f"video file not found: {path}")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FrameSourceError(f"OpenCV cannot open video {path}")
    try:
        index = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                if index == 0:
                    raise FrameSourceError(f"video {path} has no readable frames")
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f"{path.name}#{index}"
            index += 1
    finally:
        cap.release()


def open_bag(path: str | os.PathLike):
    """A rosbags ``AnyReader`` (not yet opened) for a rosbag2 folder or a ROS 1 ``.bag`` file."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    path = Path(os.path.expanduser(str(path)))
    if not path.exists():
        raise FrameSourceError(f"bag not found: {path}")
    if path.is_file() and path.suffix != ".bag":
        raise FrameSourceError(f"bag {path}: expected a rosbag2 folder (with metadata.yaml) or a "
                               f"ROS 1 .bag file, got a '{path.suffix}' file")
    # Bags normally embed their message definitions; the typestore only serves bags without.
    return AnyReader([path], default_typestore=get_typestore(Stores.ROS2_KILTED))


def bag_image_to_rgb(msg, msgtype: str) -> np.ndarray:
    """A deserialised Image or CompressedImage from a bag -> RGB (raises FrameDecodeError)."""
    if msgtype.endswith("CompressedImage"):
        return compressed_to_rgb(msg.format, msg.data)
    return raw_to_rgb(msg.encoding, int(msg.height), int(msg.width), int(msg.step), msg.data,
                      bool(msg.is_bigendian))


def bag_frames(path: str | os.PathLike, topic: Optional[str] = None
               ) -> Iterator[tuple[np.ndarray, str]]:
    """Images of ``topic`` (default: the only image topic) in record order."""
    with open_bag(path) as reader:
        images = {name: info.msgtype for name, info in reader.topics.items()
                  if info.msgtype in BAG_IMAGE_TYPES}
        if topic is None:
            if len(images) != 1:
                raise FrameSourceError(f"bag {path} has image topics {sorted(images) or '(none)'}; "
                                       "pass the one to play with --bag-topic")
            topic = next(iter(images))
        if topic not in images:
            raise FrameSourceError(f"bag {path} has no image topic {topic!r}; image topics: "
                                   f"{sorted(images) or '(none)'}")
        connections = [c for c in reader.connections if c.topic == topic]
        for index, (conn, _, raw) in enumerate(reader.messages(connections=connections)):
            try:
                rgb = bag_image_to_rgb(reader.deserialize(raw, conn.msgtype), conn.msgtype)
            except FrameDecodeError as exc:
                raise FrameSourceError(f"bag {path}, {topic} message {index}: {exc}") from exc
            yield rgb, f"{topic}#{index}"


def open_frames(images: Optional[str] = None, video: Optional[str] = None,
                bag: Optional[str] = None, bag_topic: Optional[str] = None
                ) -> Iterator[tuple[np.ndarray, str]]:
    given = [n for n, v in (("images", images), ("video", video), ("bag", bag)) if v]
    if len(given) != 1:
        raise FrameSourceError(f"give exactly one of images/video/bag, got {given or 'none'}")
    if images:
        return folder_frames(images)
    if video:
        return video_frames(video)
    return bag_frames(bag, bag_topic)
