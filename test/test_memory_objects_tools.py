"""build_memory with a detector's boxes, depth and camera_info from a bag, then
query_memory --objects --json: each object's own crop finds it where it is (within 5 cm),
with its observations merged and the pose it was seen best from."""
import json
import math

import cv2
import pytest

from clip_perception.cli import build_memory, query_memory
from object_scenes import OBJECTS, T0, camera_pose, frame_times, texture, write_objects_bag


@pytest.fixture(scope="module")
def memory(tmp_path_factory, tiny_model_id):
    root = tmp_path_factory.mktemp("objects_bag")
    bag = write_objects_bag(root / "bag")
    memory = str(root / "memory")
    return memory, ["--bag", str(bag), "--image-topic", "/camera/image_raw", "--pose-topic",
                    "/camera_pose", "--memory", memory, "--model", tiny_model_id, "--backend",
                    "torch", "--boxes-topic", "/detector/boxes"]


def test_build_with_boxes_then_query_objects(memory, tmp_path, capsys):
    path, argv = memory
    rc = build_memory.main(argv + ["--depth-topic", "/camera/depth", "--camera-info-topic",
                                   "/camera/camera_info", "--crop-padding", "0"])
    out = capsys.readouterr().out
    assert rc == 0, out
    n = len(frame_times())
    assert f"{n} arrays" in out and "2 new objects" in out and f"{2 * n - 2} merged" in out, out
    for name, where in OBJECTS.items():
        crop = tmp_path / f"{name}.png"
        cv2.imwrite(str(crop), cv2.cvtColor(texture(name, 64), cv2.COLOR_RGB2BGR))
        capsys.readouterr()
        assert query_memory.main(["--memory", path, "--image", str(crop), "--objects", "--json",
                                  "--k", "2", "--backend", "torch"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        best = rows[0]
        assert math.dist((best["x"], best["y"], best["z"]), where) < 0.05, (name, best)
        assert best["observations"] == n and best["label"] == "thing"
        assert best["score"] > rows[1]["score"] and best["scores"] == [best["score"]]
        (x, y, _), _ = camera_pose(frame_times()[-1])  # its largest box: the last frame
        assert best["seen_from"]["x"] == pytest.approx(x, abs=1e-3)
        assert best["seen_from"]["y"] == pytest.approx(y, abs=1e-3)
        assert best["first_seen"] == pytest.approx(T0 / 1e9)
        assert {"x", "y", "z", "seen_from", "score", "scores", "observations"} <= set(best)


def test_boxes_without_depth_are_objects_found_by_where_they_were_seen(memory, tmp_path,
                                                                       capsys):
    path, argv = memory
    argv = [a if a != path else str(tmp_path / "no_depth") for a in argv]
    assert build_memory.main(argv) == 0
    out = capsys.readouterr().out
    assert "objects in the memory" in out, out
    crop = tmp_path / "A.png"
    cv2.imwrite(str(crop), cv2.cvtColor(texture("A", 64), cv2.COLOR_RGB2BGR))
    assert query_memory.main(["--memory", str(tmp_path / "no_depth"), "--image", str(crop),
                              "--objects", "--k", "1", "--backend", "torch"]) == 0
    text = capsys.readouterr().out
    assert "no position (no depth)" in text and "seen from x=" in text, text
    with pytest.raises(SystemExit):
        build_memory.main(argv + ["--depth-topic"])  # argparse: a value is needed
    capsys.readouterr()
    assert build_memory.main(argv + ["--depth-topic", "/camera/depth"]) == 2
    assert "both a depth topic and a camera-info topic" in capsys.readouterr().err
