"""build_memory / query_memory on a bag written into tmp_path, through their main(argv): the
pose of the place where the query's scene was shown, restart keeps the memory, another model
is refused."""
import json

import cv2
import numpy as np
import pytest

from clip_perception.cli import build_memory, query_memory
from clip_perception.core.tiny_model import write_tiny_model
from memory_scenes import robot_pose, scene_image, write_drive_bag, x_range


@pytest.fixture(scope="module")
def drive_bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("drive")
    return write_drive_bag(root / "odom_bag"), write_drive_bag(root / "tf_bag", tf=True)


def query_json(capsys, argv):
    capsys.readouterr()
    assert query_memory.main(argv + ["--json", "--backend", "torch"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_build_then_query_by_image_finds_where_the_scene_was_shown(tmp_path, drive_bags,
                                                                   tiny_model_id, capsys):
    odom_bag, _ = drive_bags
    memory = str(tmp_path / "memory")
    rc = build_memory.main(["--bag", str(odom_bag), "--image-topic", "/camera/image_raw",
                            "--pose-topic", "/odom", "--memory", memory, "--model",
                            tiny_model_id, "--backend", "torch"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "60 images" in out and "0 without a pose" in out
    stored = int(out.split(" keyframes stored")[0].rsplit(" ", 1)[-1])
    assert 20 <= stored <= 30, out  # 12 m at min_distance 0.5 (+ novel views at scene changes)

    photo = tmp_path / "door.png"
    cv2.imwrite(str(photo), cv2.cvtColor(scene_image("B"), cv2.COLOR_RGB2BGR))
    # a new process-like call: the memory is read back from disk (restart keeps it)
    places = query_json(capsys, ["--memory", memory, "--image", str(photo), "--k", "5",
                                 "--min-separation", "3"])
    assert len(places) >= 3
    best = places[0]
    lo, hi = x_range("B")
    assert lo <= best["x"] < hi and best["score"] == pytest.approx(1.0, abs=1e-4)
    assert best["frame_id"] == "map" and best["camera"] == "/camera/image_raw"
    t = best["stamp"] - 1_700_000_000
    (x, _, _), q = robot_pose(t)
    assert best["x"] == pytest.approx(x, abs=1e-6)  # pose interpolated at the image stamp
    assert best["yaw"] == pytest.approx(0.02 * t, abs=1e-6)
    for p in places:  # only where B was shown does anything match the photo exactly
        assert (p["score"] > 0.999) == (lo - 1e-9 <= p["x"] < hi), places
    assert [p["score"] for p in places] == sorted((p["score"] for p in places), reverse=True)
    assert set(best) == {"x", "y", "z", "yaw", "frame_id", "score", "scores", "stamp",
                         "camera", "keyframe_id"}


def test_text_query_scores_are_the_raw_cosines(tmp_path, drive_bags, tiny_model_id, capsys,
                                               tiny_clip):
    odom_bag, _ = drive_bags
    memory = str(tmp_path / "memory")
    assert build_memory.main(["--bag", str(odom_bag), "--image-topic", "/camera/image_raw",
                              "--pose-topic", "/odom", "--memory", memory, "--model",
                              tiny_model_id, "--backend", "torch"]) == 0
    places = query_json(capsys, ["--memory", memory, "--text", "a red door", "a plant",
                                 "--k", "3", "--min-separation", "100"])
    assert len(places) == 1  # everything within 100 m: one place
    # independent reference: the tiny model's own embeddings of the three scenes and texts
    from clip_perception.core.encoders import EncoderSpec, open_encoders

    enc = open_encoders(EncoderSpec(model=tiny_model_id, backend="torch", device="cpu"))
    scenes = enc.images([scene_image(s) for s in "ABC"])
    texts = enc.texts(["a red door", "a plant"], ["a photo of {}."])
    expected = (scenes @ texts.T).max(axis=0)
    assert places[0]["scores"] == pytest.approx(expected.tolist(), abs=1e-4)
    assert places[0]["score"] == pytest.approx(float(expected.mean()), abs=1e-4)


def test_tf_bag_chains_static_and_dynamic_transforms(tmp_path, drive_bags, tiny_model_id,
                                                    capsys):
    _, tf_bag = drive_bags
    memory = str(tmp_path / "memory")
    assert build_memory.main(["--bag", str(tf_bag), "--image-topic", "/camera/image_raw",
                              "--tf", "--fixed-frame", "map", "--memory", memory, "--model",
                              tiny_model_id, "--backend", "torch"]) == 0
    photo = tmp_path / "door.png"
    cv2.imwrite(str(photo), cv2.cvtColor(scene_image("B"), cv2.COLOR_RGB2BGR))
    best = query_json(capsys, ["--memory", memory, "--image", str(photo), "--k", "1"])[0]
    t = best["stamp"] - 1_700_000_000
    (x, _, _), _ = robot_pose(t)
    yaw = 0.02 * t  # camera 0.2 m ahead of base_link, map -> odom +100 m
    assert best["x"] == pytest.approx(100 + x + 0.2 * np.cos(yaw), abs=1e-6)
    assert best["y"] == pytest.approx(0.2 * np.sin(yaw), abs=1e-6)
    lo, hi = x_range("B")
    assert lo <= best["x"] - 100.2 < hi


def test_memory_of_another_model_is_refused(tmp_path, drive_bags, tiny_model_id, capsys):
    odom_bag, _ = drive_bags
    memory = str(tmp_path / "memory")
    args = ["--bag", str(odom_bag), "--image-topic", "/camera/image_raw", "--pose-topic",
            "/odom", "--memory", memory, "--backend", "torch"]
    assert build_memory.main(args + ["--model", tiny_model_id]) == 0
    other = write_tiny_model(tmp_path / "other_model", seed=1)
    capsys.readouterr()
    assert build_memory.main(args + ["--model", other]) == 2
    err = capsys.readouterr().err
    assert "was built with model" in err and "cannot be compared" in err
    assert query_memory.main(["--memory", memory, "--text", "x", "--model", other,
                              "--backend", "torch"]) == 2
    assert "was built with model" in capsys.readouterr().err


def test_missing_topics_and_memory_are_clear_errors(tmp_path, drive_bags, tiny_model_id, capsys):
    odom_bag, _ = drive_bags
    rc = build_memory.main(["--bag", str(odom_bag), "--image-topic", "/camera/image_raw",
                            "--pose-topic", "/amcl_pose", "--memory", str(tmp_path / "m"),
                            "--model", tiny_model_id, "--backend", "torch"])
    err = capsys.readouterr().err
    assert rc == 2 and "no pose topic '/amcl_pose'" in err and "/odom (nav_msgs/msg/Odometry)" in err
    assert query_memory.main(["--memory", str(tmp_path / "none"), "--text", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
