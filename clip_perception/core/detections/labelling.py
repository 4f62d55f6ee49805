"""One array's boxes -> crops to encode -> ``FrameDetections``: the per-array work, pure.

``prepare_crops`` checks the array and its boxes against the frame (each refusal with its
reason), keeps the ``limit`` largest, and makes each crop exactly as a frame is made (the
caller's ``preprocess``, the node's ``Preprocessor.resize_crop``). ``label_crops`` scores the
crops' embeddings with the current ``LabelSet`` exactly as frames are scored (ensembles,
label_prompts, adapter, the ``unknown`` rule; landmark cosines raw: boxes have no identity
over time, so there is no landmark smoothing) and, with a depth view, gives each box its
position and size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from .boxes import (OVER_LIMIT, DetectionInputError, InputBox, check_array_extent, check_box,
                    crop_region, select_boxes)
from .depth import BoxDepth, CameraModel, box_depth, locate
from .results import FrameDetections, LabelledBox


@dataclass(frozen=True)
class DepthView:
    """An aligned depth image (metres, NaN = invalid) with its camera model, or the reason
    there is none for this frame (then every box is published without a position)."""
    depth_m: Optional[np.ndarray] = None
    camera: Optional[CameraModel] = None
    frame_id: str = ""
    problem: str = ""


@dataclass
class CropBatch:
    """The crops of one array, in input order of the boxes kept."""
    camera: str
    stamp_ns: int
    frame_id: str
    boxes: list[InputBox]
    regions: list[tuple[int, int, int, int]]
    inputs: list[np.ndarray]  # SxSx3 uint8, what the encoder sees (after resize_crop)
    thumbnails: list[Optional[np.ndarray]]  # the raw crops (for thumbnails), or None
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (index, reason detail)
    depth: Optional[DepthView] = None
    array_problem: str = ""  # the whole array was refused (reason detail)


def prepare_crops(camera: str, stamp_ns: int, frame_id: str, rgb: np.ndarray,
                  boxes: Sequence[InputBox], padding: float, limit: int,
                  preprocess: Callable[[np.ndarray], np.ndarray], keep_thumbnails: bool = False,
                  depth: Optional[DepthView] = None) -> CropBatch:
    height, width = rgb.shape[:2]
    batch = CropBatch(camera, stamp_ns, frame_id, [], [], [], [], depth=depth)
    try:
        check_array_extent(boxes, width, height)
    except DetectionInputError as exc:
        batch.array_problem = str(exc)
        batch.skipped = [(b.index, exc.reason) for b in boxes]
        return batch
    valid = []
    for box in boxes:
        try:
            check_box(box, width, height)
        except DetectionInputError as exc:
            batch.skipped.append((box.index, exc.reason))
            continue
        valid.append(box)
    kept, over = select_boxes(valid, limit)
    batch.skipped += [(b.index, OVER_LIMIT) for b in over]
    for box in kept:
        x0, y0, x1, y1 = crop_region(box.bbox, width, height, padding)
        region = rgb[y0:y1, x0:x1]
        batch.boxes.append(box)
        batch.regions.append((x0, y0, x1, y1))
        batch.inputs.append(preprocess(region))
        batch.thumbnails.append(np.ascontiguousarray(region) if keep_thumbnails else None)
    batch.skipped.sort()
    return batch


def label_crops(batch: CropBatch, embeddings: np.ndarray, label_set,
                label_set_version: Optional[int] = None) -> FrameDetections:
    """Scores the crops' embeddings (rows in ``batch.boxes`` order) with ``label_set``."""
    if embeddings.shape[0] != len(batch.boxes):
        raise ValueError(f"{embeddings.shape[0]} embeddings for {len(batch.boxes)} crops")
    labelled = []
    if batch.boxes:
        classifications = label_set.classify(embeddings)
        cosines = label_set.landmark_cosines(embeddings)
    else:
        classifications, cosines = [], np.zeros((0, len(label_set.landmarks)))
    depth = batch.depth
    for box, region, thumb, emb, cls, cos in zip(batch.boxes, batch.regions, batch.thumbnails,
                                                 embeddings, classifications, cosines):
        position = size = None
        robust: Optional[BoxDepth] = None
        problem = ""
        if depth is not None:
            if depth.depth_m is not None and depth.camera is not None:
                robust = box_depth(depth.depth_m, box.bbox)
                position, size = locate(depth.camera, box.bbox, robust)
                problem = robust.problem
            else:
                problem = depth.problem
        labelled.append(LabelledBox(
            index=box.index, id=box.id, bbox=tuple(float(v) for v in box.bbox),
            embedding=np.asarray(emb, np.float32),
            hypotheses=tuple((h.label, float(h.score)) for h in cls.hypotheses),
            source_hypotheses=box.source_hypotheses, position=position, size=size,
            frame_id=depth.frame_id if depth is not None else "", crop=thumb,
            landmarks=tuple((n, float(c)) for n, c in zip(label_set.landmarks, cos)),
            crop_box=region, depth=robust.depth if robust is not None else None,
            depth_problem=problem))
    version = label_set.version if label_set_version is None else label_set_version
    return FrameDetections(camera=batch.camera, stamp_ns=batch.stamp_ns,
                           frame_id=batch.frame_id, boxes=tuple(labelled),
                           label_set_version=version, skipped=tuple(batch.skipped))


def encode_in_chunks(encode: Callable[[np.ndarray], np.ndarray],
                     max_rows: int) -> Callable[[np.ndarray], np.ndarray]:
    """``encode`` called on at most ``max_rows`` rows at a time (an engine built for a largest
    batch, e.g. a TensorRT profile, refuses more): frames + crops may exceed ``max_batch``."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")

    def run(batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] <= max_rows:
            return encode(batch)
        return np.concatenate([encode(batch[i:i + max_rows])
                               for i in range(0, batch.shape[0], max_rows)])
    return run
