"""Synthetic labelled scenes and tiny bags for the training tests (a helper, not a test file).

Each class is a distinct coloured shape on its own background texture; every frame gets a
random lighting change (darker/brighter, warm/cool tint), which is what the tool is for.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CLASSES = ("cup", "apple", "door")
H, W = 72, 96


def scene(label: str, rng: np.random.Generator) -> np.ndarray:
    """An HxWx3 uint8 RGB frame of ``label`` under a random lighting change."""
    img = np.empty((H, W, 3), np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    cx, cy = W // 2 + int(rng.integers(-8, 9)), H // 2 + int(rng.integers(-6, 7))
    if label == "cup":  # blue stripes, red disc
        img[:] = np.where(((xx // 6) % 2)[..., None] == 0, [40, 60, 200], [20, 30, 120])
        cv2.circle(img, (cx, cy), 18, (230, 30, 30), -1)
    elif label == "apple":  # green checkerboard, yellow square
        img[:] = np.where((((xx // 8) + (yy // 8)) % 2)[..., None] == 0, [40, 170, 50], [20, 90, 20])
        cv2.rectangle(img, (cx - 16, cy - 16), (cx + 16, cy + 16), (240, 220, 30), -1)
    else:  # grey gradient, white triangle
        img[:] = (xx * 200 // W).astype(np.uint8)[..., None]
        pts = np.array([[cx, cy - 20], [cx - 20, cy + 16], [cx + 20, cy + 16]], np.int32)
        cv2.fillPoly(img, [pts], (250, 250, 250))
    gain = rng.uniform(0.4, 1.4) * np.array([rng.uniform(0.8, 1.2), 1.0, rng.uniform(0.8, 1.2)])
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img * gain + noise, 0, 255).astype(np.uint8)


def schedule(segments_per_class: int = 4, segment_s: float = 6.0, hz: float = 1.0):
    """[(t_seconds_from_start, label)] — classes take turns in segments."""
    out = []
    t = 0.0
    for _ in range(segments_per_class):
        for label in CLASSES:
            n = int(segment_s * hz)
            out += [(t + i / hz, label) for i in range(n)]
            t += segment_s
    return out


T0 = 1_700_000_000 * 10**9  # bag start (record time, ns)


def _image_msg(ts, rgb, t_ns, encoding="rgb8"):
    Image = ts.types["sensor_msgs/msg/Image"]
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    data = rgb if encoding == "rgb8" else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return Image(header=Header(stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id="cam"),
                 height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, is_bigendian=0,
                 step=rgb.shape[1] * 3, data=np.ascontiguousarray(data).reshape(-1))


def _compressed_msg(ts, rgb, t_ns, payload=None):
    Msg = ts.types["sensor_msgs/msg/CompressedImage"]
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    if payload is None:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        payload = buf.reshape(-1)
    return Msg(header=Header(stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id="cam"),
               format="jpeg", data=np.asarray(payload, np.uint8))


def write_rosbag2(path: Path, *, storage: str = "mcap", seed: int = 0, corrupt: bool = False,
                  label_topic: bool = True, **sched) -> dict:
    """rosbag2 with /cam/image (Image, bgr8), /cam/compressed (CompressedImage, JPEG) and
    /label (std_msgs/String, published at each label change). ``corrupt`` adds one undecodable
    JPEG and one truncated (undeserialisable) Image message. Returns facts for assertions."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    rng = np.random.default_rng(seed)
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    sch = schedule(**sched)
    with Writer(path, version=9, storage_plugin=plugin) as w:
        c_img = w.add_connection("/cam/image", "sensor_msgs/msg/Image", typestore=ts)
        c_jpg = w.add_connection("/cam/compressed", "sensor_msgs/msg/CompressedImage", typestore=ts)
        c_lbl = w.add_connection("/label", "std_msgs/msg/String", typestore=ts) if label_topic else None
        String = ts.types["std_msgs/msg/String"]
        last = None
        for t, label in sch:
            t_ns = T0 + int(t * 1e9)
            if c_lbl is not None and label != last:
                w.write(c_lbl, t_ns - 1000, ts.serialize_cdr(String(data=label), "std_msgs/msg/String"))
                last = label
            rgb = scene(label, rng)
            w.write(c_img, t_ns, ts.serialize_cdr(_image_msg(ts, rgb, t_ns, "bgr8"), "sensor_msgs/msg/Image"))
            w.write(c_jpg, t_ns + 1000, ts.serialize_cdr(_compressed_msg(ts, scene(label, rng), t_ns),
                                                         "sensor_msgs/msg/CompressedImage"))
        if corrupt:  # inside the first label's first segment so they would be selected
            t_ns = T0 + 500_000_000
            w.write(c_jpg, t_ns, ts.serialize_cdr(_compressed_msg(ts, None, t_ns, payload=np.frombuffer(b"not a jpeg" * 5, np.uint8)),
                                                  "sensor_msgs/msg/CompressedImage"))
            w.write(c_img, t_ns, b"\x00\x01\x00\x00\x05")
    return {"frames_per_topic": len(sch), "schedule": sch}


def write_ros1_bag(path: Path, seed: int = 0, **sched) -> dict:
    """ROS 1 bag with /cam/image (Image, rgb8) and /label (String)."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    rng = np.random.default_rng(seed)
    sch = schedule(**sched)
    with Writer(path) as w:
        c_img = w.add_connection("/cam/image", "sensor_msgs/msg/Image", typestore=ts)
        c_lbl = w.add_connection("/label", "std_msgs/msg/String", typestore=ts)
        String = ts.types["std_msgs/msg/String"]
        Image = ts.types["sensor_msgs/msg/Image"]
        Header = ts.types["std_msgs/msg/Header"]
        Time = ts.types["builtin_interfaces/msg/Time"]
        last = None
        for t, label in sch:
            t_ns = T0 + int(t * 1e9)
            if label != last:
                w.write(c_lbl, t_ns - 1000, ts.serialize_ros1(String(data=label), "std_msgs/msg/String"))
                last = label
            rgb = scene(label, rng)
            msg = Image(header=Header(seq=0, stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9),
                                      frame_id="cam"),
                        height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", is_bigendian=0,
                        step=rgb.shape[1] * 3, data=rgb.reshape(-1))
            w.write(c_img, t_ns, ts.serialize_ros1(msg, "sensor_msgs/msg/Image"))
    return {"frames_per_topic": len(sch), "schedule": sch}


def write_intervals(path: Path, bag_name: str, sched) -> Path:
    """The intervals YAML equivalent of ``sched`` (one interval per label segment)."""
    import yaml

    segs = []
    for t, label in sched:
        if segs and segs[-1]["label"] == label and t - segs[-1]["end"] < 1.5:
            segs[-1]["end"] = t + 0.5
        else:
            segs.append({"start": max(0.0, t - 0.5), "end": t + 0.5, "label": label})
    path.write_text(yaml.safe_dump({bag_name: segs}))
    return path


def write_folders(root: Path, per_class: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for label in CLASSES:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cv2.imwrite(str(root / label / f"{i:03d}.png"), cv2.cvtColor(scene(label, rng), cv2.COLOR_RGB2BGR))
    return root


class CountingEncoder:
    """Wraps an ImageEncoder and counts the images it is asked to encode."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.precision = inner.precision
        self.images = 0
        self.calls = 0

    def encode_images(self, batch):
        self.calls += 1
        self.images += len(batch)
        return self.inner.encode_images(batch)
