"""Synthetic scenes with a vocabulary, and captions from it: the world the small CLIP learns.

A scene is one to three shapes of one kind, colour and size on a textured background, with
clutter (thin grey strokes and specks no caption mentions). Every scene is a pure function of
its seed, so a split by seed is a split of scenes, and a vocabulary of (colour, shape) pairs
can be kept out of training entirely (``HELD_OUT_PAIRS``) to test unseen combinations.

Captions name a random subset of the scene's attributes ("two large red stars on a striped
background", "a shape on the left", "something green"), so each attribute can be asked about
alone at zero-shot time with the prompts of ``ATTRIBUTE_PROMPTS``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon",
          "crescent", "arrow", "heart", "semicircle")
COLOURS = {"red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220),
           "yellow": (240, 220, 30), "orange": (245, 130, 20), "purple": (130, 40, 170),
           "pink": (250, 130, 190), "cyan": (40, 220, 230), "white": (250, 250, 250),
           "black": (15, 15, 15)}
SIZES = ("small", "large")
COUNTS = ("one", "two", "three")
POSITIONS = {"on the left": (0.27, 0.5), "on the right": (0.73, 0.5), "at the top": (0.5, 0.27),
             "at the bottom": (0.5, 0.73), "in the middle": (0.5, 0.5)}
BACKGROUNDS = ("plain", "striped", "checkered", "dotted", "speckled", "gradient")
# (colour, shape) pairs never rendered for training: zero-shot on them tests composition.
HELD_OUT_PAIRS = (("red", "star"), ("green", "circle"), ("blue", "triangle"),
                  ("yellow", "square"), ("orange", "cross"), ("purple", "ring"),
                  ("pink", "diamond"), ("cyan", "hexagon"), ("white", "heart"),
                  ("black", "arrow"))
_PLURAL = {"cross": "crosses"}


def plural(shape: str) -> str:
    return _PLURAL.get(shape, shape + "s")


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    size: str
    count: str
    position: str  # one of POSITIONS for a single shape, "" for two or three
    background: str

    @property
    def kind(self) -> str:
        """The operator-style label of the scene's object, e.g. 'red star'."""
        return f"{self.colour} {self.shape}"

    def attribute(self, name: str) -> str:
        return getattr(self, name)


def draw_scene(rng: np.random.Generator, allow_held_out: bool = False, **fixed) -> Scene:
    """A random scene; keyword arguments fix attributes (e.g. ``shape='star'``)."""
    while True:
        values = {
            "shape": SHAPES[rng.integers(len(SHAPES))],
            "colour": list(COLOURS)[rng.integers(len(COLOURS))],
            "size": SIZES[rng.integers(len(SIZES))],
            "count": COUNTS[rng.integers(len(COUNTS))],
            "position": list(POSITIONS)[rng.integers(len(POSITIONS))],
            "background": BACKGROUNDS[rng.integers(len(BACKGROUNDS))],
        }
        values.update(fixed)
        if values["count"] != "one":
            values["position"] = ""
        if allow_held_out or (values["colour"], values["shape"]) not in HELD_OUT_PAIRS:
            return Scene(**values)
        if "colour" in fixed and "shape" in fixed:
            raise ValueError(f"{fixed['colour']} {fixed['shape']} is held out of training "
                             "scenes; pass allow_held_out=True to render it")


# ---- rendering ------------------------------------------------------------------------------
def _background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(70, 190, 3)
    other = np.clip(base + rng.uniform(-60, 60, 3), 0, 255)
    yy, xx = np.mgrid[0:size, 0:size]
    period = int(rng.integers(max(2, size // 12), max(3, size // 6)))
    if kind == "plain":
        mask = np.zeros((size, size), bool)
    elif kind == "striped":
        mask = ((xx if rng.random() < 0.5 else yy) // period) % 2 == 0
    elif kind == "checkered":
        mask = ((xx // period) + (yy // period)) % 2 == 0
    elif kind == "dotted":
        mask = ((xx % period - period / 2) ** 2 + (yy % period - period / 2) ** 2) < (period / 4) ** 2
    elif kind == "speckled":
        mask = cv2.resize((rng.random((size // 2, size // 2)) < 0.35).astype(np.uint8),
                          (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)
    else:  # gradient
        t = (xx if rng.random() < 0.5 else yy) / (size - 1)
        return (base * (1 - t[..., None]) + other * t[..., None]).astype(np.float32)
    return np.where(mask[..., None], other, base).astype(np.float32)


def _polygon(n: int, r: float, phase: float, inner: float = 1.0) -> np.ndarray:
    k = n * (2 if inner != 1.0 else 1)
    angles = phase + np.arange(k) * 2 * np.pi / k
    radii = np.where(np.arange(k) % 2 == 1, r * inner, r) if inner != 1.0 else np.full(k, r)
    return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)


def _draw_shape(img: np.ndarray, shape: str, cx: float, cy: float, r: float, colour) -> None:
    c = tuple(int(v) for v in colour)
    ctr = np.array([cx, cy])

    def poly(points):
        cv2.fillPoly(img, [np.round(points + ctr).astype(np.int32)], c, cv2.LINE_AA)

    if shape == "circle":
        cv2.circle(img, (int(cx), int(cy)), int(r), c, -1, cv2.LINE_AA)
    elif shape == "square":
        poly(_polygon(4, r * 1.25, np.pi / 4))
    elif shape == "triangle":
        poly(_polygon(3, r * 1.2, -np.pi / 2) + [0, r * 0.2])
    elif shape == "star":
        poly(_polygon(5, r * 1.2, -np.pi / 2, inner=0.42))
    elif shape == "diamond":
        poly(np.array([[0, -r * 1.2], [r * 0.75, 0], [0, r * 1.2], [-r * 0.75, 0]]))
    elif shape == "hexagon":
        poly(_polygon(6, r * 1.1, 0.0))
    elif shape == "cross":
        w = r * 0.38
        poly(np.array([[-w, -r], [w, -r], [w, r], [-w, r]]))
        poly(np.array([[-r, -w], [r, -w], [r, w], [-r, w]]))
    elif shape == "ring":
        cv2.circle(img, (int(cx), int(cy)), int(r * 0.8), c, max(2, int(r * 0.4)), cv2.LINE_AA)
    elif shape == "crescent":  # a disc minus an offset disc, drawn through a mask
        mask = np.zeros(img.shape[:2], np.uint8)
        cv2.circle(mask, (int(cx), int(cy)), int(r), 255, -1, cv2.LINE_AA)
        cv2.circle(mask, (int(cx + r * 0.5), int(cy - r * 0.2)), int(r * 0.85), 0, -1,
                   cv2.LINE_AA)
        alpha = (mask.astype(np.float32) / 255.0)[..., None]
        img[:] = img * (1 - alpha) + np.asarray(c, np.float32) * alpha
    elif shape == "arrow":
        poly(np.array([[-r, -r * 0.25], [r * 0.1, -r * 0.25], [r * 0.1, -r * 0.7], [r, 0],
                       [r * 0.1, r * 0.7], [r * 0.1, r * 0.25], [-r, r * 0.25]]))
    elif shape == "heart":
        cv2.circle(img, (int(cx - r * 0.45), int(cy - r * 0.3)), int(r * 0.55), c, -1, cv2.LINE_AA)
        cv2.circle(img, (int(cx + r * 0.45), int(cy - r * 0.3)), int(r * 0.55), c, -1, cv2.LINE_AA)
        poly(np.array([[-r, -r * 0.15], [r, -r * 0.15], [0, r * 1.05]]))
    elif shape == "semicircle":
        cv2.ellipse(img, (int(cx), int(cy + r * 0.4)), (int(r * 1.1), int(r * 1.1)), 0, 180, 360,
                    c, -1, cv2.LINE_AA)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _places(scene: Scene, size: int, r: float, rng: np.random.Generator) -> list[tuple]:
    n = COUNTS.index(scene.count) + 1
    if n == 1:
        fx, fy = POSITIONS[scene.position]
        jitter = size * 0.05
        return [(fx * size + rng.uniform(-jitter, jitter), fy * size + rng.uniform(-jitter, jitter))]
    places: list[tuple] = []
    while len(places) < n:
        p = tuple(rng.uniform(r * 1.3, size - r * 1.3, 2))
        if all(np.hypot(p[0] - q[0], p[1] - q[1]) > 2.3 * r for q in places):
            places.append(p)
        elif rng.random() < 0.02:  # crowded: start over
            places = []
    return places


def render(scene: Scene, seed: int, size: int = 64, light: float = 1.0) -> np.ndarray:
    """HxWx3 uint8 RGB of ``scene`` at ``size`` (drawn at 2x, then area-downsampled).
    ``seed`` decides the texture, placement jitter, clutter and a mild light variation
    (``light`` scales it: the training scenes' whole range of illumination)."""
    rng = np.random.default_rng(seed)
    big = size * 2
    img = cv2.resize(_background(scene.background, size, rng), (big, big),
                     interpolation=cv2.INTER_NEAREST)
    for _ in range(int(rng.integers(2, 6))):  # clutter: thin grey strokes
        g = float(rng.uniform(60, 200))
        p, q = rng.integers(0, big, 2), rng.integers(0, big, 2)
        cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), (g, g, g), 1, cv2.LINE_AA)
    img = np.ascontiguousarray(img)
    n = COUNTS.index(scene.count) + 1
    r = big * (0.12 if scene.size == "small" else 0.21) * (0.85 if n == 3 else 1.0)
    r *= rng.uniform(0.9, 1.1)
    colour = np.clip(np.array(COLOURS[scene.colour]) + rng.normal(0, 10, 3), 0, 255)
    for cx, cy in _places(scene, big, r, rng):
        _draw_shape(img, scene.shape, cx, cy, r, colour)
    small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    gain = 1.0 + light * rng.uniform(-0.15, 0.15) + light * rng.normal(0, 0.03, 3)
    small = small * gain + rng.normal(0, 3, small.shape)
    return np.clip(small + 0.5, 0, 255).astype(np.uint8)


# ---- captions -------------------------------------------------------------------------------
def caption(scene: Scene, rng: np.random.Generator) -> str:
    """A caption naming a random subset of the scene's attributes (at least one)."""
    while True:
        use = {a: rng.random() < p for a, p in (("shape", 0.85), ("colour", 0.6), ("size", 0.4),
                                                ("count", 0.5), ("position", 0.4),
                                                ("background", 0.35))}
        if any(use.values()) and not (use["position"] and not scene.position):
            break
    n = COUNTS.index(scene.count) + 1
    noun = (scene.shape if n == 1 else plural(scene.shape)) if use["shape"] else \
        ("shape" if n == 1 else "shapes")
    words = [w for w, on in ((scene.size, use["size"]), (scene.colour, use["colour"])) if on]
    article = ("an" if (words or [noun])[0][0] in "aeiou" else "a") if n == 1 else scene.count
    if n == 1 and use["count"]:
        article = "one"
    text = " ".join([article, *words, noun])
    if use["position"]:
        text += " " + scene.position
    if use["background"]:
        text += f" on a {scene.background} background"
    prefix = ("a photo of ", "a picture of ", "an image of ", "", "")[rng.integers(5)]
    return prefix + text + "."


# ---- zero-shot prompts per attribute --------------------------------------------------------
# (the label texts, the templates an ensemble averages, the single template used without one)
ATTRIBUTE_PROMPTS = {
    "shape": (SHAPES, ("a photo of a {}.", "a picture of a {}.", "an image of a {}.", "a {}.",
                       "a photo of a small {}.", "a photo of a large {}."), "a photo of a {}."),
    "colour": (tuple(COLOURS), ("a photo of a {} shape.", "a {} shape.", "an image of a {} shape.",
                                "a picture of a small {} shape.", "a large {} shape."),
               "a photo of a {} shape."),
    "size": (SIZES, ("a photo of a {} shape.", "a {} shape.", "a picture of a {} shape."),
             "a photo of a {} shape."),
    "count": (("one shape", "two shapes", "three shapes"),
              ("a photo of {}.", "{}.", "a picture of {}.", "an image of {}."), "a photo of {}."),
    "position": (tuple(POSITIONS), ("a photo of a shape {}.", "a shape {}.",
                                    "a picture of a shape {}."), "a photo of a shape {}."),
    "background": (BACKGROUNDS, ("a photo of a shape on a {} background.",
                                 "a shape on a {} background.",
                                 "a picture of a shape on a {} background."),
                   "a photo of a shape on a {} background."),
}
# The node-style label of a scene's kind ("red star") with templates for whole kinds.
KIND_TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "an image of a {}.", "a {}.",
                  "a photo of a small {}.", "a photo of a large {}.")


def attribute_value_label(attribute: str, scene: Scene) -> str:
    """The label text of ``scene``'s value of ``attribute`` among ATTRIBUTE_PROMPTS' labels."""
    if attribute == "count":
        return ATTRIBUTE_PROMPTS["count"][0][COUNTS.index(scene.count)]
    return scene.attribute(attribute)
