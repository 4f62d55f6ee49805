"""The verdict: gain with a take-level bootstrap interval, no condition (real or synthetic)
losing more than the allowed points, a head that only wins on synthetic light refused."""
from __future__ import annotations

import numpy as np

from clip_perception.training.evaluate import balanced_accuracy
from clip_perception.training.verdict import Outcome, VerdictRule, bootstrap_gain, decide


def _takes(n_labels=3, takes=4, frames=10):
    y = np.repeat(np.arange(n_labels), takes * frames)
    take_ids = np.repeat(np.arange(n_labels * takes), frames)
    return y, take_ids


def _wrong(y, mask, n_labels=3):
    """Predictions: right except where ``mask`` (there: the next label)."""
    return np.where(mask, (y + 1) % n_labels, y)


def test_balanced_accuracy_weighs_labels_equally():
    y = np.array([0] * 90 + [1] * 10)
    pred = np.zeros(100, int)  # always label 0: 90 % plain accuracy
    assert balanced_accuracy(y, pred) == 0.5


def test_head_that_only_wins_on_synthetic_conditions_is_refused():
    y, takes = _takes()
    rng = np.random.default_rng(0)
    zs = _wrong(y, rng.random(len(y)) < 0.2)
    real = Outcome(y, zs, zs.copy())  # as recorded, the head answers what zero-shot answers
    dark_zs = _wrong(y, rng.random(len(y)) < 0.6)
    synthetic = {"dark": Outcome(y, dark_zs, y.copy()), "warm": Outcome(y, dark_zs, y.copy())}
    v = decide(real, takes, {"night": real}, synthetic, VerdictRule())
    assert not v["written"]
    assert v["gain"] == 0.0 and "below --min-gain 1" in v["reason"]
    assert v["per_condition"]["dark"]["kind"] == "synthetic"
    assert v["per_condition"]["dark"]["change"] > 30
    assert set(v) == {"written", "reason", "gain", "gain_ci_low", "per_condition"}


def test_a_real_condition_losing_more_than_max_loss_refuses_a_better_head():
    y, takes = _takes(takes=6)
    rng = np.random.default_rng(1)
    zs = _wrong(y, rng.random(len(y)) < 0.4)
    head = _wrong(y, rng.random(len(y)) < 0.05)
    day, night = takes % 2 == 0, takes % 2 == 1
    night_head = np.where(night, _wrong(y, np.ones(len(y), bool)), head)  # wrong on every night frame
    real = {"day": Outcome(y[day], zs[day], head[day]),
            "night": Outcome(y[night], zs[night], night_head[night])}
    overall = Outcome(y, zs, np.where(night, night_head, head))
    v = decide(overall, takes, real, {}, VerdictRule(max_loss=2.0))
    assert v["per_condition"]["night"]["change"] < -2 and v["per_condition"]["day"]["change"] > 2
    assert not v["written"] and "night (real)" in v["reason"]
    forced = decide(overall, takes, real, {}, VerdictRule(force=True))
    assert forced["written"] and "--force" in forced["reason"]


def test_the_interval_comes_from_takes_not_frames():
    """The head is perfect on three takes per label and wrong on the fourth: the gain is
    positive, but with four takes per label the bootstrap lower bound is not above 0 — while
    the same predictions counted as independent frames would look certain."""
    y, takes = _takes(takes=4, frames=25)
    zs = _wrong(y, (takes % 4 == 0) | (np.arange(len(y)) % 5 == 0))  # ~40 % wrong
    head = _wrong(y, takes % 4 == 1)  # one whole take per label wrong: 25 %
    out = Outcome(y, zs, head)
    low, high = bootstrap_gain(out, takes, resamples=2000)
    gain = out.change()["change"]
    assert gain > 1.0 and low < 0.0 < high
    frame_low, _ = bootstrap_gain(out, np.arange(len(y)), resamples=2000)  # every frame a take
    assert frame_low > 0.0
    assert not decide(out, takes, {"day": out}, {}, VerdictRule())["written"]


def test_a_clear_win_everywhere_is_written():
    y, takes = _takes(takes=5)
    rng = np.random.default_rng(2)
    zs = _wrong(y, rng.random(len(y)) < 0.5)
    head = _wrong(y, rng.random(len(y)) < 0.05)
    out = Outcome(y, zs, head)
    v = decide(out, takes, {"day": out}, {"dark": out}, VerdictRule())
    assert v["written"] and v["gain_ci_low"] > 0 and v["gain"] >= 1.0


def test_optimistic_splits_say_so_in_the_reason():
    y, takes = _takes(takes=5)
    out = Outcome(y, _wrong(y, takes % 2 == 0), y.copy())
    v = decide(out, takes, {"day": out}, {}, VerdictRule(), optimistic=True)
    assert "OPTIMISTIC" in v["reason"] and "--allow-few-takes" in v["reason"]
