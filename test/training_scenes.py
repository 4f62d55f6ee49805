"""Synthetic labelled scenes and tiny bags for the training tests (a helper, not a test file).

Each class is a distinct coloured shape on its own background texture. Frames come in takes,
as a robot lingering on an object records them: within a take the frames are near copies (the
same placement and light, sensor noise and a slight flicker); across takes the placement, the
background and the light differ. So a split that cuts takes leaks, and the tests can see it.
A lighting condition ("day", "night") changes the light of every take recorded under it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("cup", "apple", "door")
H, W = 72, 96
LIGHT = {"day": (1.0, np.array([1.0, 1.0, 1.0])), "night": (0.35, np.array([0.8, 0.9, 1.3]))}


def _draw(label: str, cx: int, cy: int, shade: float) -> np.ndarray:
    img = np.empty((H, W, 3), np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
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
    return np.clip(img * shade, 0, 255).astype(np.uint8)


@dataclass
class SceneTake:
    """One take of ``label``: placement, background shade and light fixed for all its frames."""

    label: str
    rng: np.random.Generator
    condition: str = "day"

    def __post_init__(self):
        r = self.rng
        self.cx, self.cy = W // 2 + int(r.integers(-10, 11)), H // 2 + int(r.integers(-8, 9))
        level, tint = LIGHT[self.condition]
        self.gain = level * r.uniform(0.6, 1.3) * tint * np.array(
            [r.uniform(0.85, 1.15), 1.0, r.uniform(0.85, 1.15)])
        self.base = _draw(self.label, self.cx, self.cy, r.uniform(0.8, 1.1)).astype(np.float32)

    def frame(self) -> np.ndarray:
        """A near copy of the take's view: sensor noise and a slight flicker of the light."""
        img = self.base * self.gain * self.rng.uniform(0.98, 1.02)
        return np.clip(img + self.rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)


def scene(label: str, rng: np.random.Generator) -> np.ndarray:
    """One frame of ``label`` from a take of its own (placement and light drawn anew)."""
    return SceneTake(label, rng).frame()


def schedule(segments_per_class: int = 4, segment_s: float = 6.0, hz: float = 1.0):
    """[(t_seconds_from_start, label)] — classes take turns in segments (one take each)."""
    out = []
    t = 0.0
    for _ in range(segments_per_class):
        for label in CLASSES:
            n = int(segment_s * hz)
            out += [(t + i / hz, label) for i in range(n)]
            t += segment_s
    return out


def take_frames(sched, rng, condition: str = "day", switch_at: float | None = None):
    """(t, label, take) per schedule entry; a new SceneTake at every label change, and at
    ``switch_at`` seconds, where the light switches to the other condition."""
    take, last = None, None
    for t, label in sched:
        cond = condition if switch_at is None or t < switch_at else \
            ("night" if condition == "day" else "day")
        if (label, cond) != last:
            take, last = SceneTake(label, rng, cond), (label, cond)
        yield t, label, take

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
                  label_topic: bool = True, condition: str = "day", t0: int | None = None,
                  condition_topic: bool = False, switch_at: float | None = None,
                  topics: tuple = ("/cam/image", "/cam/compressed"), **sched) -> dict:
    """rosbag2 with /cam/image (Image, bgr8), /cam/compressed (CompressedImage, JPEG) and
    /label (std_msgs/String, published at each label change). ``corrupt`` adds one undecodable
    JPEG and one truncated (undeserialisable) Image message. Frames are lit as ``condition``;
    with ``condition_topic`` a /lighting String names it, and ``switch_at`` (s) switches it to
    the other condition mid-take. Returns facts for assertions."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    rng = np.random.default_rng(seed)
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    sch = schedule(**sched)
    t0 = T0 if t0 is None else t0
    with Writer(path, version=9, storage_plugin=plugin) as w:
        c_img = w.add_connection("/cam/image", "sensor_msgs/msg/Image", typestore=ts)
        c_jpg = w.add_connection("/cam/compressed", "sensor_msgs/msg/CompressedImage", typestore=ts)
        c_lbl = w.add_connection("/label", "std_msgs/msg/String", typestore=ts) if label_topic else None
        c_cond = w.add_connection("/lighting", "std_msgs/msg/String", typestore=ts) \
            if condition_topic else None
        String = ts.types["std_msgs/msg/String"]
        if c_cond is not None:
            w.write(c_cond, t0, ts.serialize_cdr(String(data=condition), "std_msgs/msg/String"))
        last, lit = None, condition
        for t, label, take in take_frames(sch, rng, condition, switch_at):
            t_ns = t0 + int(t * 1e9)
            if c_lbl is not None and label != last:
                w.write(c_lbl, t_ns - 1000, ts.serialize_cdr(String(data=label), "std_msgs/msg/String"))
                last = label
            if c_cond is not None and take.condition != lit:
                lit = take.condition
                w.write(c_cond, t_ns - 500, ts.serialize_cdr(String(data=lit), "std_msgs/msg/String"))
            if "/cam/image" in topics:
                w.write(c_img, t_ns, ts.serialize_cdr(_image_msg(ts, take.frame(), t_ns, "bgr8"),
                                                      "sensor_msgs/msg/Image"))
            if "/cam/compressed" in topics:
                w.write(c_jpg, t_ns + 1000, ts.serialize_cdr(_compressed_msg(ts, take.frame(), t_ns),
                                                             "sensor_msgs/msg/CompressedImage"))
        if corrupt:  # inside the first label's first segment so they would be selected
            t_ns = t0 + 500_000_000
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
        for t, label, take in take_frames(sch, rng):
            t_ns = T0 + int(t * 1e9)
            if label != last:
                w.write(c_lbl, t_ns - 1000, ts.serialize_ros1(String(data=label), "std_msgs/msg/String"))
                last = label
            rgb = take.frame()
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


def write_folders(root: Path, per_class: int = 6, seed: int = 0, takes: int = 3,
                  condition: str = "day") -> Path:
    """root/<label>/take<k>_<i>.png: ``takes`` numbered sequences per label (a take each)."""
    rng = np.random.default_rng(seed)
    for label in CLASSES:
        (root / label).mkdir(parents=True, exist_ok=True)
        for k in range(takes):
            take = SceneTake(label, rng, condition)
            for i in range(per_class // takes):
                cv2.imwrite(str(root / label / f"take{k}_{i:03d}.png"),
                            cv2.cvtColor(take.frame(), cv2.COLOR_RGB2BGR))
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
