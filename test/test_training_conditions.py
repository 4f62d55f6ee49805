"""Real lighting conditions: named per source, from a String topic or a folder level; accuracy
per condition on test and leave-one-condition-out on two generated conditions (day, night)."""
from __future__ import annotations

import json

import pytest

from clip_perception.cli import train_adapter as train_cli
from clip_perception.training.bags import scan_bag
from clip_perception.training.data import TrainingInputError
from clip_perception.cli.training_arguments import parse_conditions
from clip_perception.training.sources import SourceSpec, load_frames
from training_scenes import CLASSES, T0, write_folders, write_rosbag2

HOUR = 3600 * 10**9


@pytest.fixture(scope="module")
def day_and_night(tmp_path_factory):
    """Two sessions an hour apart: one by day, one at night, 4 takes of 4 s per label each."""
    root = tmp_path_factory.mktemp("conditions")
    for name, cond, t0, seed in (("kitchen_day", "day", T0, 10), ("kitchen_night", "night", T0 + HOUR, 11)):
        write_rosbag2(root / name, seed=seed, condition=cond, t0=t0, topics=("/cam/image",),
                      segments_per_class=4, segment_s=4.0)
    return root


def test_leave_one_condition_out_on_day_and_night(day_and_night, tiny_model_id, tmp_path):
    out = tmp_path / "h.safetensors"
    rc = train_cli.main(["--model", tiny_model_id, "--precision", "fp32",
                         "--bag", str(day_and_night / "kitchen_day"),
                         "--bag", str(day_and_night / "kitchen_night"), "--topic", "/cam/image",
                         "--label-topic", "/label", "--condition", "kitchen_day=day",
                         "--condition", "kitchen_night.mcap=night", "--output", str(out),
                         "--cache-dir", str(tmp_path / "cache"), "--augmentations", "0",
                         "--blend", "0.5", "--epochs", "40", "--force", "--no-progress"])
    assert rc == 0
    report = json.loads(out.with_name("h.report.json").read_text())
    per = report["verdict"]["per_condition"]
    assert {c for c, v in per.items() if v["kind"] == "real"} == {"day", "night"}
    # takes are interleaved by condition: each label has a test take by day and one at night
    tests = report["split_details"]["entry_conditions"]["test"]
    assert sorted(tests) == ["day"] * len(CLASSES) + ["night"] * len(CLASSES)
    assert per["day"]["n_frames"] + per["night"]["n_frames"] == report["split_details"]["frames"]["test"]
    loco = report["leave_one_condition_out"]
    assert set(loco) == {"day", "night"}
    per_bag = 4 * 4 * len(CLASSES)  # every frame of the held-out session is its test set
    for held, other in (("day", "night"), ("night", "day")):
        r = loco[held]
        assert r["trained_on"] == [other] and r["n_test_frames"] == per_bag
        assert 0.0 <= r["zero_shot"] <= 1.0 and 0.0 <= r["head"] <= 1.0
        assert r["gain"] == pytest.approx(100 * (r["head"] - r["zero_shot"]))
        assert r["n_train_frames"] < report["split_details"]["frames"]["train"]


def test_condition_topic_names_the_light_and_starts_a_new_take(tmp_path):
    path = tmp_path / "evening"
    write_rosbag2(path, condition="day", condition_topic=True, switch_at=9.0,
                  topics=("/cam/image",), segments_per_class=1, segment_s=6.0)
    cands = scan_bag(path, ["/cam/image"], label_topic="/label", condition_topic="/lighting")
    assert [c.condition for c in cands] == ["day"] * 9 + ["night"] * 9
    apple = [c for c in cands if c.label == "apple"]  # 6..12 s: the light switched at 9 s
    assert len({c.take for c in apple}) == 2
    assert len({c.take for c in cands}) == 4


def test_condition_folders_and_named_sources(tmp_path):
    write_folders(tmp_path / "conds" / "day", per_class=3, takes=3)
    write_folders(tmp_path / "conds" / "night", per_class=3, takes=3, condition="night")
    loaded = load_frames(SourceSpec(condition_folders=[str(tmp_path / "conds")]),
                         lambda rgb: rgb[:4, :4].copy(), progress=False)
    assert sorted({f.condition for f in loaded.frames}) == ["day", "night"]
    assert sum(f.condition == "night" for f in loaded.frames) == 3 * len(CLASSES)
    with pytest.raises(TrainingInputError, match="condition folder not found"):
        load_frames(SourceSpec(condition_folders=[str(tmp_path / "nope")]), lambda x: x)
    # --condition by folder name applies to an --image-folder too
    spec = SourceSpec(folders=[str(tmp_path / "conds" / "day")], conditions={"day": "sunny"})
    assert {f.condition for f in load_frames(spec, lambda rgb: rgb[:4, :4].copy(), False).frames} \
        == {"sunny"}


@pytest.mark.parametrize("entry", ["night", "=night", "bag="])
def test_condition_option_needs_source_and_name(entry):
    with pytest.raises(TrainingInputError, match="SOURCE=NAME"):
        parse_conditions([entry])


def test_one_source_cannot_have_two_conditions():
    with pytest.raises(TrainingInputError, match="two conditions"):
        parse_conditions(["a=day", "a=night"])
    assert parse_conditions(["a=day", " b = night "]) == {"a": "day", "b": "night"}


def test_evaluate_prompts_reports_each_real_condition(day_and_night, tiny_model_id, tmp_path,
                                                      capsys):
    from clip_perception.cli import evaluate_prompts as evaluate_cli

    js = tmp_path / "eval.json"
    rc = evaluate_cli.main(["--model", tiny_model_id, "--precision", "fp32",
                            "--bag", str(day_and_night / "kitchen_day"),
                            "--bag", str(day_and_night / "kitchen_night"), "--topic", "/cam/image",
                            "--label-topic", "/label", "--condition", "kitchen_day=day",
                            "--condition", "kitchen_night=night", "--cache-dir",
                            str(tmp_path / "cache"), "--json", str(js), "--no-progress"])
    assert rc == 0
    real = json.loads(js.read_text())["real_conditions"]
    assert set(real) == {"day", "night"}
    assert real["day"]["n_frames"] == real["night"]["n_frames"] == 4 * 4 * len(CLASSES)
    assert "real condition 'night' (48 frames" in capsys.readouterr().out
