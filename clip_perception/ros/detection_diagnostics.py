"""/diagnostics of the detection path: one status per camera with boxes, every loss counted by
its reason (pairing, arrays refused, boxes skipped, boxes without a position, depth and
camera_info problems). WARN while no array has come yet, or when something was refused in the
last ``recent`` seconds; OK otherwise."""
from __future__ import annotations

import time
from typing import Optional

from .diagnostics import OK, WARN, Status


def _by_reason(prefix: str, counts: dict[str, int]) -> list[tuple[str, str]]:
    return [(f"{prefix}: {reason}", str(n)) for reason, n in sorted(counts.items())]


def detection_statuses(node_name: str, interface, now: Optional[float] = None,
                       recent: float = 5.0) -> list[Status]:
    """The statuses of ``interface`` (a ros.detections.DetectionInterface; None: none)."""
    if interface is None:
        return []
    now = time.monotonic() if now is None else now
    interface.pairing.expire()  # arrays past the timeout are counted even when nothing flows
    pairing = interface.pairing.counts()
    stats = interface.stats.snapshot()
    statuses = []
    for cam in interface.settings.cameras:
        p, s = pairing[cam.camera], stats[cam.camera]
        values = [("camera", cam.camera), ("boxes topic", cam.boxes),
                  ("depth topic", cam.depth or "(none)"),
                  ("camera_info topic", cam.camera_info or "(none)"),
                  ("crop_padding", f"{interface.crop_padding:g}"),
                  ("max_detections_per_frame", str(interface.max_detections)),
                  ("arrays in", str(p.arrays)), ("arrays paired", str(p.paired)),
                  ("arrays labelled", str(s.arrays_labelled)),
                  *_by_reason("arrays lost", p.lost),
                  *_by_reason("arrays refused", s.arrays_refused),
                  ("boxes in", str(s.boxes_in)), ("boxes labelled", str(s.boxes_labelled)),
                  *_by_reason("boxes skipped", s.boxes_skipped),
                  ("boxes with position", str(s.boxes_located)),
                  *_by_reason("boxes without position", s.boxes_unlocated),
                  *_by_reason("inputs refused", s.inputs_refused),
                  *_by_reason("noted", p.notes),
                  ("label ms mean (per array)",
                   f"{1000 * s.label_seconds / s.arrays_labelled:.2f}" if s.arrays_labelled
                   else "0")]
        last, when = max((p.last_problem, p.last_problem_time),
                         (s.last_problem, s.last_problem_time), key=lambda x: x[1])
        values.append(("last problem", last or "(none)"))
        if p.arrays == 0:
            level, message = WARN, f"no arrays on {cam.boxes} yet (check topic name and QoS)"
        elif last and now - when < recent:
            level, message = WARN, last
        else:
            level, message = OK, f"{s.arrays_labelled} arrays labelled"
        statuses.append(Status(f"{node_name}: detections {cam.camera}", level, message[:500],
                               cam.boxes, tuple(values)))
    return statuses
