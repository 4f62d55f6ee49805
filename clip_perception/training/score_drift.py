"""Why the share of out-of-set frames accepted grows with the label count (``score_study``).

Per label count K, for the node's neglabel with the bank without the out-of-set words:

- the best label's cosine: of the out-of-set frames, of those accepted, and of the in-set
  frames (the labels cover more of the world as K grows, so an out-of-set frame's nearest
  label comes as close as an in-set frame's own);
- of the out-of-set frames accepted, how many have a best label of their own colour or of their
  own shape (what the model confuses them by);
- the negative words in use per label (the bank without the label and its synonyms);
- the vocabulary oracle: the share of frames whose nearest of all 120 kind words (the
  out-of-set kinds' own names included) is a label. No threshold is involved: it is what a
  score knowing every word of the world would accept, and its growth with K is the model's
  own confusion, which no score over these embeddings removes.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from . import synthetic_scenes as scenes


def all_kinds() -> list[str]:
    """Every (colour, shape) kind of the world, held-out pairs included."""
    return [f"{c} {s}" for c in scenes.COLOURS for s in scenes.SHAPES]


class DriftRecord:
    """Per-frame facts pooled over the study's draws; ``summary`` reduces them per K."""

    def __init__(self, kind_embeddings: np.ndarray):
        self.kind_embeddings = np.asarray(kind_embeddings, np.float32)  # all_kinds() order
        self.index = {kind: i for i, kind in enumerate(all_kinds())}
        self.rows: dict = {}

    def add(self, k: int, part: str, x: np.ndarray, cos: np.ndarray, labels: Sequence[str],
            negatives: float, score: np.ndarray, out_scenes: Optional[list] = None) -> None:
        """One draw's frames ``x`` (``part`` "in" or "out"), their cosines to ``labels``, the
        negative words in use and the frames' NegLabel score; ``out_scenes`` for "out"."""
        r = self.rows.setdefault(k, {}).setdefault(part, {})
        nearest = (x @ self.kind_embeddings.T).argmax(axis=1)
        best = cos.argmax(axis=1)
        facts = {"best_cosine": cos.max(axis=1), "score": score,
                 "vocabulary_label": np.isin(nearest, [self.index[lb] for lb in labels]),
                 "negatives": np.array([negatives])}
        if out_scenes is not None:
            named = [labels[i].split(" ") for i in best]
            pairs = list(zip(named, out_scenes))
            facts["same_colour"] = np.array([c == s.colour for (c, _), s in pairs])
            facts["same_shape"] = np.array([h == s.shape for (_, h), s in pairs])
        for name, values in facts.items():
            r.setdefault(name, []).append(values)

    def summary(self, threshold: float) -> dict:
        """Per K, at NegLabel's (bank without the out-of-set words) study threshold."""
        out = {}
        for k, parts in sorted(self.rows.items()):
            i, o = ({n: np.concatenate(v) for n, v in parts[p].items()} for p in ("in", "out"))
            accepted = o["score"] >= threshold

            def share(values, rows=accepted):
                return round(float(values[rows].mean()), 4) if rows.any() else None
            out[k] = {"best_label_cosine_in": round(float(i["best_cosine"].mean()), 4),
                      "best_label_cosine_out": round(float(o["best_cosine"].mean()), 4),
                      "best_label_cosine_out_accepted": share(o["best_cosine"]),
                      "accepted_best_label_same_colour": share(o["same_colour"]),
                      "accepted_best_label_same_shape": share(o["same_shape"]),
                      "negatives_in_use": round(float(i["negatives"].mean()), 1),
                      "vocabulary_out_accepted": round(float(o["vocabulary_label"].mean()), 4),
                      "vocabulary_in_refused": round(1.0 - float(i["vocabulary_label"].mean()), 4)}
        return out
