"""Does a score mean the same for 3, 10 and 30 labels? In-set frames (kinds in the label set)
against out-of-set frames (kinds no label set contains) on the small CLIP, for each score of
``core.scoring``: the node's two modes (softmax; neglabel, each label against the bank of
negative words), MCM, a fitted temperature, NegLabel's own summed share and its variants (the
node's earlier mining of half the bank, grouping, normalised by the label count, at the fitted
temperature, mined from world captions), the raw best cosine.

For every label count K, ``draws`` random label sets of K kinds; the in-set frames are those of
the set's kinds, the out-of-set frames those of a definition of ``OUT_VALUES`` (a shape, a
colour, or both no label names). One threshold per score is chosen where 5 % of in-set frames
are refused at K=10; the rates at K=3 and K=30 then show how far the meaning of that threshold
moves with the label count. Each K's own threshold (5 % refused at that K) shows the most any
recalibration of the score across label counts could give. Why acceptances move:
``score_drift.py``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.scoring import (fit_temperature, mcm_scores, mine_negatives,
                            neglabel_grouped_scores, neglabel_per_word_scores,
                            neglabel_probabilities, softmax)
from ..core.vocabulary import LabelSetSpec, build_label_set
from ..core.vocabulary.spec import negative_bank as negative_bank_of
from ..core.vocabulary.snapshot import zero_shot_negative_logits
from . import score_drift
from . import synthetic_scenes as scenes
from .small_clip_eval import SmallClipProbe, held_out_scenes, render_all

# What makes a frame out of set: a shape no label set names, or (the second study) a colour,
# or (an extra, farther definition) both a colour and a shape no label names.
OUT_VALUES = {"shape": ("heart", "arrow", "crescent"), "colour": ("cyan", "pink", "orange")}
OUT_VALUES["colour_and_shape"] = OUT_VALUES["colour"] + OUT_VALUES["shape"]
OUT_SHAPES = OUT_VALUES["shape"]
GOAL_SHIFT = 0.05  # issue 23: each rate moves at most 5 points from 3 to 30 labels
GROUPS = 4  # NegLabel's grouping: the mined negatives in this many random groups
CAPTIONS = 1500  # the large generic bank: distinct captions of the world's caption grammar
HALF = 0.5  # the node's NegMining share until it kept every word but synonyms
CAPTION_SHARE = 0.15  # of it mined per label set (NegLabel: 10,000 of ~70,000 WordNet words)


def _is_out(colour: str, shape: str, out_attribute: str) -> bool:
    values = OUT_VALUES[out_attribute]
    if out_attribute == "colour_and_shape":
        return colour in values or shape in values
    return (shape if out_attribute == "shape" else colour) in values


def in_kinds(out_attribute: str = "shape") -> tuple[str, ...]:
    """The kinds label sets are drawn from: none with an out-of-set value, none held out."""
    return tuple(f"{c} {s}" for c in scenes.COLOURS for s in scenes.SHAPES
                 if not _is_out(c, s, out_attribute) and (c, s) not in scenes.HELD_OUT_PAIRS)


def _out_scene_values(i: int, out_attribute: str) -> dict:
    """The fixed attribute(s) of the i-th out-of-set frame."""
    if out_attribute == "colour_and_shape":
        return {"colour": OUT_VALUES["colour"][i % 3], "shape": OUT_VALUES["shape"][(i // 3) % 3]}
    return {out_attribute: OUT_VALUES[out_attribute][i % 3]}


IN_KINDS = in_kinds("shape")
LABEL_COUNTS = (3, 10, 30)


def negative_bank(include_out: bool = True, out_attribute: str = "shape") -> tuple[str, ...]:
    """The fixed bank of negative words: every kind and shape name the world has, and the
    backgrounds (``include_out=False``: without any word for the out-of-set values)."""
    out = () if include_out else OUT_VALUES[out_attribute]
    shapes = [s for s in scenes.SHAPES if s not in out]
    colours = [c for c in scenes.COLOURS if c not in out]  # names differ from shapes
    return tuple([f"{c} {s}" for c in colours for s in shapes] + shapes
                 + [f"{b} background" for b in scenes.BACKGROUNDS])


def caption_bank(out_attribute: str, count: int = CAPTIONS, seed: int = 123) -> tuple[str, ...]:
    """``count`` distinct captions of random scenes (``synthetic_scenes.caption``), then those
    naming an out-of-set value dropped: a large bank never chosen by knowing the out-of-set
    kinds, for NegMining per label set."""
    rng, found = np.random.default_rng(seed), set()
    while len(found) < count:
        found.add(scenes.caption(scenes.draw_scene(rng, allow_held_out=True), rng))
    words = OUT_VALUES[out_attribute]
    return tuple(c for c in sorted(found) if not any(w in c for w in words))


def study_frames(probe: SmallClipProbe, out_attribute: str = "shape", per_kind: int = 5,
                 out_frames: int = 300, seed: int = 10):
    """(in-set embeddings, their kind index into in_kinds(), out-of-set embeddings, the
    out-of-set scenes)."""
    size = probe.clip.image_size
    pairs, kinds = [], []
    for k, kind in enumerate(in_kinds(out_attribute)):
        colour, shape = kind.split(" ")
        got = held_out_scenes(per_kind, seed=seed + k, colour=colour, shape=shape)
        pairs += got
        kinds += [k] * len(got)
    out_pairs = [pair for i in range(out_frames) for pair in held_out_scenes(
        1, seed=seed + 500 + i, **_out_scene_values(i, out_attribute))]
    return (probe.embed_images(render_all(pairs, size)), np.array(kinds),
            probe.embed_images(render_all(out_pairs, size)), [scene for scene, _ in out_pairs])


def _scores(probe: SmallClipProbe, x: np.ndarray, labels: Sequence[str], templates,
            fitted: float, out_attribute: str, captions: np.ndarray) -> dict:
    """Every score of frames ``x`` for ``labels``: the node's two modes through the label set
    it would build (``build_label_set``), the others from the cosines and, for the NegLabel
    variants, from the logits of the label set with the bank without the out-of-set words.
    ``captions``: the caption bank's embeddings, mined per label set (NegMining). Also returns
    the cosines and the label set without the out-of-set words."""
    emb = probe.prompts.ensemble(list(labels), list(templates))
    cos = x @ emb.T
    out = {"mcm_T1": mcm_scores(cos, 1.0),
           "fitted_temperature": softmax(cos * fitted).max(axis=1),
           "max_cosine": cos.max(axis=1)}
    for name, mode, bank in (("softmax", "softmax", ()),
                             ("neglabel", "neglabel", negative_bank(True, out_attribute)),
                             ("neglabel_closed_bank", "neglabel",
                              negative_bank(False, out_attribute))):
        spec = LabelSetSpec(labels=tuple(labels), templates=tuple(templates), score_mode=mode,
                            negative_labels=bank)
        label_set = build_label_set(spec, probe.prompts, probe.clip.logit_scale,
                                    probe.clip.embed_dim, 0)
        out[name] = label_set.probabilities(x).max(axis=1)  # what the node thresholds
        if name == "neglabel":  # NegLabel's own score, the labels' summed share, on these
            # negatives and (the node's rule until 2026-12-02) on the half of the bank farthest
            # from the labels
            lc = label_set.classifier.logits(x)
            out["neglabel_sum"] = neglabel_probabilities(lc, zero_shot_negative_logits(
                x, shared_negatives(label_set), probe.clip.logit_scale)).sum(axis=1)
            words = [w for w in negative_bank_of(spec) if w not in labels]
            full = probe.prompts.ensemble(words, list(templates))
            half = full[mine_negatives(full, emb, max(1, round(HALF * len(full))))]
            out["neglabel_sum_mined_half"] = neglabel_probabilities(
                lc, zero_shot_negative_logits(x, half, probe.clip.logit_scale)).sum(axis=1)
    # closed bank: grouping, normalised by label count, the per-model (fitted) temperature
    lc = label_set.classifier.logits(x)
    nl = zero_shot_negative_logits(x, shared_negatives(label_set), probe.clip.logit_scale)
    out["neglabel_closed_grouped"] = neglabel_grouped_scores(lc, nl, GROUPS)
    out["neglabel_closed_per_word"] = neglabel_per_word_scores(lc, nl)
    rescale = fitted / probe.clip.logit_scale
    out["neglabel_closed_fitted_temperature"] = neglabel_probabilities(
        lc * rescale, nl * rescale).sum(axis=1)
    mined = captions[mine_negatives(captions, emb, round(CAPTION_SHARE * len(captions)))]
    out["neglabel_captions"] = neglabel_probabilities(
        lc, zero_shot_negative_logits(x, mined, probe.clip.logit_scale)).sum(axis=1)
    return out, cos, label_set


def shared_negatives(label_set) -> np.ndarray:
    """The bank words that are negatives of every label: the one set of negatives NegLabel's
    summed share (and its variants) needs."""
    return label_set.negative_embeddings[label_set.negative_mask.all(axis=0)]


def run_study(probe: SmallClipProbe, templates: Sequence[str] = scenes.KIND_TEMPLATES,
              draws: int = 30, seed: int = 0, refuse_at_10: float = 0.05,
              out_attribute: str = "shape") -> dict:
    IN_KINDS = in_kinds(out_attribute)  # noqa: N806 (the module constant's per-study twin)
    emb_in, kind, emb_out, out_scenes = study_frames(probe, out_attribute)
    drift = score_drift.DriftRecord(probe.prompts.ensemble(score_drift.all_kinds(),
                                                           list(templates)))
    label_emb = probe.prompts.ensemble(list(IN_KINDS), list(templates))
    bank = caption_bank(out_attribute)
    captions = probe.prompts.ensemble(list(bank), ["{}"])
    # the per-model temperature: fitted once on a labelled 10-kind set of other frames
    rng = np.random.default_rng(seed + 99)
    fit_kinds = np.sort(rng.choice(len(IN_KINDS), 10, replace=False))
    fit_rows = np.isin(kind, fit_kinds)
    fitted = fit_temperature(emb_in[fit_rows] @ label_emb[fit_kinds].T,
                             np.searchsorted(fit_kinds, kind[fit_rows]))
    rng = np.random.default_rng(seed)
    pooled: dict = {}
    accuracy = {}
    for k in LABEL_COUNTS:
        hits = []
        for _ in range(draws):
            chosen = np.sort(rng.choice(len(IN_KINDS), k, replace=False))
            rows = np.isin(kind, chosen)
            labels = [IN_KINDS[i] for i in chosen]
            for part, x in (("in", emb_in[rows]), ("out", emb_out)):
                got, cos, closed = _scores(probe, x, labels, templates, fitted, out_attribute,
                                           captions)
                for name, values in got.items():
                    pooled.setdefault(name, {}).setdefault(k, {}).setdefault(part, []).append(values)
                drift.add(k, part, x, cos, labels, float(closed.negative_mask.sum(axis=1).mean()),
                          got["neglabel_closed_bank"], out_scenes if part == "out" else None)
                if part == "in":
                    hits.append(chosen[cos.argmax(axis=1)] == kind[rows])
        accuracy[k] = round(float(np.concatenate(hits).mean()), 4)
    table = {}
    for name, per_k in pooled.items():
        scores = {k: {part: np.concatenate(v) for part, v in parts.items()}
                  for k, parts in per_k.items()}
        threshold = float(np.quantile(scores[10]["in"], refuse_at_10))
        rows = {}
        for k, s in scores.items():
            own = float(np.quantile(s["in"], refuse_at_10))  # this K's own threshold
            rows[k] = {"in_refused": round(float((s["in"] < threshold).mean()), 4),
                       "out_accepted": round(float((s["out"] >= threshold).mean()), 4),
                       "auroc": round(_auroc(s["in"], s["out"]), 4),
                       "out_accepted_own_threshold": round(float((s["out"] >= own).mean()), 4)}
        shifts = {f"shift_{n}": round(abs(rows[3][n] - rows[30][n]), 4)
                  for n in ("in_refused", "out_accepted", "out_accepted_own_threshold")}
        table[name] = {"threshold": float(f"{threshold:.4g}"), "per_k": rows, **shifts,
                       "meets_goal": max(shifts["shift_in_refused"],
                                         shifts["shift_out_accepted"]) <= GOAL_SHIFT}
    return {"label_counts": list(LABEL_COUNTS), "draws": draws, "in_kinds": len(IN_KINDS),
            "in_frames": int(len(emb_in)), "out_frames": int(len(emb_out)),
            "out_attribute": out_attribute, "out_values": list(OUT_VALUES[out_attribute]),
            "bank_sizes": {"neglabel": len(negative_bank(True, out_attribute)),
                           "neglabel_closed_bank": len(negative_bank(False, out_attribute)),
                           "neglabel_captions": len(bank)},
            "fitted_logit_scale": round(fitted, 2),
            "model_logit_scale": round(probe.clip.logit_scale, 2),
            "groups": GROUPS, "top1_accuracy_in_set": accuracy, "scores": table,
            "drift": drift.summary(table["neglabel_closed_bank"]["threshold"])}


def _auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of an in-set frame > score of an out-of-set frame), ties count half."""
    allv = np.concatenate([pos, neg])
    ranks = allv.argsort(kind="stable").argsort(kind="stable").astype(np.float64) + 1
    # average ranks of ties
    _, inv, counts = np.unique(allv, return_inverse=True, return_counts=True)
    sums = np.zeros(len(counts))
    np.add.at(sums, inv, ranks)
    ranks = (sums / counts)[inv]
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
