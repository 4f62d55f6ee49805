"""The accuracy features on the small trained CLIP (models/small_clip), each checked on a random
CLIP too: every bar here is one that random weights miss, so these tests mean something."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clip_perception.core.model import load_clip
from clip_perception.core.vocabulary import LabelSetSpec, build_label_set
from clip_perception.training import synthetic_scenes as scenes
from clip_perception.training.small_clip_eval import (SmallClipProbe, attribute_accuracy,
                                                      held_out_scenes, render_all)

SMALL_CLIP = Path(__file__).resolve().parents[1] / "models" / "small_clip"
# the width-12 model names 88 % of held-out shapes and 72 % on unseen pairs (bench, 1200 / 600
# scenes); the bars leave room for the 120 / 60 scenes drawn here
SHAPE_BAR, UNSEEN_SHAPE_BAR = 0.7, 0.5


@pytest.fixture(scope="module")
def small(request):
    return SmallClipProbe(load_clip(f"local-dir:{SMALL_CLIP}"))


@pytest.fixture(scope="module")
def random_clip(tiny_clip):
    return SmallClipProbe(tiny_clip)


def _embed(probe, pairs, transform=None):
    return probe.embed_images(render_all(pairs, probe.clip.image_size, transform))


def _label_set(probe, labels, templates=scenes.KIND_TEMPLATES, **kw):
    spec = LabelSetSpec.from_values(labels=labels, prompt_templates=templates, **kw)
    return build_label_set(spec, probe.prompts, probe.clip.logit_scale, probe.clip.embed_dim, 0)


def _kind_accuracy(probe, kinds, per_kind=8, seed=40, templates=scenes.KIND_TEMPLATES, **kw):
    pairs = []
    for i, kind in enumerate(kinds):
        colour, shape = kind.split(" ")
        pairs += held_out_scenes(per_kind, seed=seed + i, colour=colour, shape=shape)
    truth = np.repeat(np.arange(len(kinds)), per_kind)
    probs = _label_set(probe, kinds, templates, **kw).probabilities(_embed(probe, pairs))
    return float((probs.argmax(axis=1) == truth).mean())


def test_small_clip_is_a_small_local_dir_model():
    files = {p.name: p.stat().st_size for p in SMALL_CLIP.iterdir()}
    assert {"open_clip_config.json", "open_clip_model.safetensors", "training.json"} <= set(files)
    assert files["open_clip_model.safetensors"] < 4 * 2 ** 20


def test_zero_shot_names_colour_count_and_size_of_held_out_scenes(small, random_clip):
    pairs = held_out_scenes(120, seed=3)
    attributes = ("colour", "count", "size")
    got = attribute_accuracy(small, pairs, _embed(small, pairs), attributes)
    # width-12 model on these 120 scenes: colour 95 %, count 100 %, size 99 % (the width-8 one
    # passed bars of 65 / 80 / 70 %)
    assert got["colour"]["ensemble"] >= 0.85 and got["count"]["ensemble"] >= 0.9 \
        and got["size"]["ensemble"] >= 0.9, got
    rand = attribute_accuracy(random_clip, pairs, _embed(random_clip, pairs), attributes)
    assert rand["colour"]["ensemble"] < 0.35 and rand["count"]["ensemble"] < 0.6, rand


def test_zero_shot_names_the_shape_of_held_out_scenes(small, random_clip):
    """The shape, the attribute the width-8 model missed (19 %, chance 8 %): held-out seeds,
    and the (colour, shape) pairs training never rendered, where a model that guesses the
    shape from the colour scores below chance."""
    seen, unseen = held_out_scenes(120, seed=3), held_out_scenes(60, seed=4, unseen_pairs=True)
    got = [attribute_accuracy(probe, pairs, _embed(probe, pairs), ("shape",))["shape"]["ensemble"]
           for probe in (small, random_clip) for pairs in (seen, unseen)]
    assert got[0] >= SHAPE_BAR and got[1] >= UNSEEN_SHAPE_BAR, got
    assert got[2] < 0.2 and got[3] < 0.2, got


def test_prompt_ensemble_is_no_worse_than_one_template(small, random_clip):
    """On the small CLIP an ensemble of templates neither helps nor hurts (docs/accuracy.md:
    its captions' wordings carry no nuisance the templates could average out); both name the
    kinds well above chance, where random weights stay near it."""
    kinds = ["red circle", "red ring", "blue square", "blue diamond", "green star",
             "green cross", "yellow hexagon", "yellow semicircle"]
    ensemble = _kind_accuracy(small, kinds)
    one = _kind_accuracy(small, kinds, templates=("a photo of a {}.",))
    assert ensemble >= 0.5 and ensemble >= one - 0.03, (ensemble, one)
    assert _kind_accuracy(random_clip, kinds) < 0.3


def test_label_prompts_fix_labels_the_model_has_no_words_for(small, random_clip):
    """The strawberry/peach case in miniature: 'apple' and 'plum' mean nothing to the small
    CLIP; a prompt override per label in the world's words fixes the confusion."""
    kinds = ["red circle", "blue circle"]
    pairs = [p for i, k in enumerate(kinds) for p in
             held_out_scenes(20, seed=60 + i, colour=k.split()[0], shape="circle")]
    truth = np.repeat([0, 1], 20)
    overrides = ["apple=a photo of a red circle.|a red circle.",
                 "plum=a photo of a blue circle.|a blue circle."]
    for probe, bar in ((small, True), (random_clip, False)):
        x = _embed(probe, pairs)
        plain = _label_set(probe, ["apple", "plum"]).classify(x)
        fixed = _label_set(probe, ["apple", "plum"], label_prompts=overrides).classify(x)
        acc_plain = np.mean([c.best.label == ["apple", "plum"][t] for c, t in zip(plain, truth)])
        acc_fixed = np.mean([c.best.label == ["apple", "plum"][t] for c, t in zip(fixed, truth)])
        assert (acc_fixed >= 0.95 and acc_fixed >= acc_plain + 0.15) == bar, (
            probe.clip.identifier, acc_plain, acc_fixed)


def test_landmark_cosines_rank_the_described_scene_first(small, random_clip):
    described = [("a red star", "red", "star"), ("a blue ring", "blue", "ring"),
                 ("a yellow triangle", "yellow", "triangle"), ("a white cross", "white", "cross"),
                 ("a green hexagon", "green", "hexagon"), ("a purple heart", "purple", "heart")]
    pairs = [held_out_scenes(1, seed=80 + i, colour=c, shape=s, count="one", size="large")[0]
             for i, (_, c, s) in enumerate(described[1:], 1)]
    pairs.insert(0, held_out_scenes(1, seed=80, unseen_pairs=True, count="one", size="large")[0])
    assert pairs[0][0].kind == "red star"  # a pair training never showed

    def right_first(probe):
        landmarks = [text for text, _, _ in described]
        label_set = _label_set(probe, ["shape"], landmarks=landmarks,
                               landmark_templates=["a photo of {}."])
        cos = label_set.landmark_cosines(_embed(probe, pairs))  # (scenes, landmarks)
        return int((cos.argmax(axis=0) == np.arange(len(described))).sum())

    assert right_first(small) >= 5
    assert right_first(random_clip) <= 3


def test_memory_text_and_image_queries_return_the_right_place(small, tmp_path):
    """Three places along a corridor, each showing one kind of object; a text query and an
    image query (a new view, another seed) each find the right place first."""
    from clip_perception.core.memory import (Keyframe, KeyframeStore, ModelIdentity, Pose,
                                             query_places)

    places = {"blue star": 0.0, "yellow ring": 6.0, "purple triangle": 12.0}
    keyframes = []
    for p, (kind, x0) in enumerate(places.items()):
        colour, shape = kind.split(" ")
        pairs = held_out_scenes(5, seed=100 + p, colour=colour, shape=shape)
        for i, emb in enumerate(_embed(small, pairs)):
            keyframes.append(Keyframe(emb, Pose((x0 + 0.5 * i, 0.0, 0.0), frame_id="map"),
                                      (p * 10 + i) * 10 ** 8, "cam"))
    store = KeyframeStore(str(tmp_path / "places.db"), ModelIdentity.of(small.clip))
    try:
        store.insert(keyframes)
        for kind, x0 in places.items():
            text = small.prompts.ensemble([kind], list(scenes.KIND_TEMPLATES))
            colour, shape = kind.split(" ")
            view = _embed(small, held_out_scenes(1, seed=200 + int(x0), colour=colour,
                                                 shape=shape))
            for query in (text, view):
                best = query_places(store, query, k=3, min_separation=3.0).places[0]
                assert x0 <= best.keyframe.pose.position[0] <= x0 + 2.0, (kind, best)
    finally:
        store.close()


@pytest.mark.parametrize("out_attribute", ["shape", "colour", "colour_and_shape"])
def test_neglabel_threshold_keeps_its_meaning_from_3_to_30_labels(small, random_clip,
                                                                   out_attribute):
    """Issue 23's goal, as the bench measures it (30 label sets per count): at one threshold
    (5 % of in-set frames refused at 10 labels) neglabel's in-set refusals and out-of-set
    acceptances each move at most 5 points from 3 to 30 labels, whichever attribute makes a
    frame out of set, and in-set frames rank above out-of-set ones (AUROC 0.994-0.9995 here);
    the softmax's refusals move by more (10-14 points). Random weights rank at chance."""
    from clip_perception.training.score_study import run_study

    got = run_study(small, out_attribute=out_attribute)["scores"]
    neglabel, soft = got["neglabel"], got["softmax"]
    assert neglabel["shift_in_refused"] <= 0.05 and neglabel["shift_out_accepted"] <= 0.05, \
        neglabel
    assert neglabel["meets_goal"] and not soft["meets_goal"]
    assert soft["shift_in_refused"] >= 0.08, soft
    assert min(row["auroc"] for row in neglabel["per_k"].values()) >= 0.98
    assert all(neglabel["per_k"][k]["auroc"] > soft["per_k"][k]["auroc"] for k in (3, 10, 30))
    if out_attribute == "colour":
        rand = run_study(random_clip, draws=3, out_attribute="colour")["scores"]["neglabel"]
        assert max(row["auroc"] for row in rand["per_k"].values()) < 0.7, rand


def test_training_is_seeded():
    """Two short runs with the same seed give the same weights; another seed does not."""
    from clip_perception.core.model import hash_state_dict
    from clip_perception.training.small_clip import TrainSettings, train

    settings = TrainSettings(steps=3, batch=16, pool=48, warmup=1)
    a, record = train(settings, log_every=0)
    b, _ = train(settings, log_every=0)
    c, _ = train(TrainSettings(steps=3, batch=16, pool=48, warmup=1, seed=1), log_every=0)
    assert hash_state_dict(a.state_dict()) == hash_state_dict(b.state_dict())
    assert hash_state_dict(a.state_dict()) != hash_state_dict(c.state_dict())
    assert record["final_loss"] > 0 and record["settings"]["steps"] == 3
