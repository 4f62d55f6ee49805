"""Frame sources (folder, video, rosbag) and the demo command end to end."""
import subprocess
import sys

import cv2
import numpy as np
import pytest

from clip_perception.core.frame_sources import FrameSourceError, open_frames
from node_testing import REPO, pattern_image, ros_env


def _write_images(folder, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    frames = [pattern_image(48, 64, seed=i) for i in range(n)]
    for i, rgb in enumerate(frames):
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return frames


def test_folder_frames_in_name_order_as_rgb(tmp_path):
    frames = _write_images(tmp_path / "imgs")
    got = list(open_frames(images=str(tmp_path / "imgs")))
    assert [n for _, n in got] == ["f0.png", "f1.png", "f2.png"]
    np.testing.assert_array_equal(got[1][0], frames[1])  # PNG is lossless: exact RGB


def test_video_frames(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for i in range(4):
        writer.write(cv2.cvtColor(pattern_image(48, 64, seed=i), cv2.COLOR_RGB2BGR))
    writer.release()
    got = list(open_frames(video=str(path)))
    assert len(got) == 4 and got[0][0].shape == (48, 64, 3) and got[3][1] == "clip.avi#3"


def test_bag_frames_raw_and_compressed(tmp_path):
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    Image, CompressedImage = (store.types["sensor_msgs/msg/Image"],
                              store.types["sensor_msgs/msg/CompressedImage"])
    Header, Time = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    rgb = pattern_image(48, 64)
    bag = tmp_path / "bag"
    with Writer(bag, version=8) as writer:
        raw = writer.add_connection("/cam/image_raw", Image.__msgtype__, typestore=store)
        comp = writer.add_connection("/cam/image_raw/compressed", CompressedImage.__msgtype__,
                                     typestore=store)
        for i in range(2):
            header = Header(stamp=Time(sec=i, nanosec=0), frame_id="cam")
            msg = Image(header=header, height=48, width=64, encoding="rgb8", is_bigendian=0,
                        step=64 * 3, data=rgb.reshape(-1))
            writer.write(raw, i * 10 ** 9, store.serialize_cdr(msg, Image.__msgtype__))
            ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            cmsg = CompressedImage(header=header, format="png", data=png.reshape(-1))
            writer.write(comp, i * 10 ** 9, store.serialize_cdr(cmsg, CompressedImage.__msgtype__))
    with pytest.raises(FrameSourceError, match="pass the one to play with --bag-topic"):
        list(open_frames(bag=str(bag)))
    for topic in ("/cam/image_raw", "/cam/image_raw/compressed"):
        got = list(open_frames(bag=str(bag), bag_topic=topic))
        assert len(got) == 2
        np.testing.assert_array_equal(got[0][0], rgb)
    with pytest.raises(FrameSourceError, match="no image topic '/other'"):
        list(open_frames(bag=str(bag), bag_topic="/other"))


def test_sources_reject_missing_paths(tmp_path):
    with pytest.raises(FrameSourceError, match="image folder not found"):
        list(open_frames(images=str(tmp_path / "none")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FrameSourceError, match="no images"):
        list(open_frames(images=str(tmp_path / "empty")))
    with pytest.raises(FrameSourceError, match="exactly one"):
        open_frames()


def test_demo_one_command_prints_results(tmp_path):
    pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not built here")
    _write_images(tmp_path / "imgs", n=2)
    result = subprocess.run(
        [sys.executable, "-m", "clip_perception.cli.demo", "--images", str(tmp_path / "imgs"),
         "--tiny-model", "--backend", "torch", "--labels", "cup", "apple",
         "--landmarks", "a red door", "--rate", "5", "--topic", "/demo_test/image_raw"],
        cwd=REPO, env=dict(ros_env(), HOME=str(tmp_path / "home")), capture_output=True,
        text=True, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    # the throw-away tiny model's exported towers stay in its temp folder, not in ~/.cache
    assert not (tmp_path / "home" / ".cache" / "clip_perception").exists()
    for name in ("f0.png", "f1.png"):
        lines = [line for line in out.splitlines() if line.strip().startswith(name)]
        assert any("cup" in line and "apple" in line for line in lines), out
        assert any("landmarks (cosine): a red door" in line for line in lines), out
    assert "published 2 frames" in out
