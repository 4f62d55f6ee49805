"""``precision: auto`` on a CPU: of the engines this machine can run, keep those that pass
verification on natural photographs, time each briefly here, serve the fastest.

Rules of thumb do not survive contact with CPUs (bf16 is 3x fp32 with AMX and slower than fp32
without it; int8 gains on AVX2 depend on VNNI), so the choice is measured. The decision is
cached, keyed by the CPU (model and ISA flags), library versions, model weights, threads and
the candidate list, so a restart re-verifies the chosen engine but does not re-time them all.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifacts import model_artifact_dir
from ..devices import cpu_identity
from .base import BackendUnavailable

logger = logging.getLogger(__name__)

DECISION_FORMAT = 2  # 2: max_batch left the key
TIMING_SECONDS = 0.5  # per candidate and round, after one warm-up run
# Candidates are timed in interleaved rounds and each keeps its best round: a burst of load
# from elsewhere (a build, another process) then costs one round of one candidate, not its
# whole verdict. One sequential 1 s run each once served OpenVINO fp32 over a 1.5x faster int8.
TIMING_ROUNDS = 3
# Order only breaks exact ties; otherwise the measured speed decides.
CPU_CANDIDATES = (("openvino", "bf16"), ("onnxruntime", "int8"), ("openvino", "fp32"),
                  ("onnxruntime", "fp32"))


@dataclass(frozen=True)
class Candidate:
    backend: str
    precision: str
    device: str = "cpu"


def library_versions() -> dict:
    out = {}
    for name in ("onnxruntime", "openvino", "torch"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def build_candidate(clip, candidate: Candidate, cache_dir, threads, reference):
    """The verified encoder for ``candidate``; BackendUnavailable (ArtifactRefused on failed
    verification) says why not."""
    if candidate.backend == "openvino":
        from .openvino_backend import OpenVinoImageEncoder

        return OpenVinoImageEncoder.from_clip(clip, cache_dir, candidate.precision, threads,
                                              reference, device=candidate.device)
    if candidate.backend == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeImageEncoder

        return OnnxRuntimeImageEncoder.from_clip(clip, cache_dir=cache_dir,
                                                 device=candidate.device, threads=threads,
                                                 precision=candidate.precision,
                                                 reference=reference)
    raise ValueError(f"no CPU candidate builder for backend {candidate.backend!r}")


def try_candidate(clip, candidate, cache_dir, threads, reference, selection):
    """``build_candidate`` with every refusal or failure recorded on ``selection``; None then."""
    from .engine_cache import ArtifactRefused

    c = candidate
    try:
        return build_candidate(clip, c, cache_dir, threads, reference)
    except ArtifactRefused as exc:  # a verdict of the verification, not a skip
        selection.add(c.backend, c.precision, c.device, "refused", str(exc))
    except BackendUnavailable as exc:  # skipped if this machine lacks something, else failed
        selection.skip(c.backend, c.precision, c.device, exc)
    except Exception as exc:  # e.g. an export or compile error: recorded, logged as a warning
        selection.add(c.backend, c.precision, c.device, "failed", f"{type(exc).__name__}: {exc}")
    return None


def images_per_second(encoder, image: np.ndarray, seconds: float = TIMING_SECONDS) -> float:
    """Batch-1 throughput (the latency a single camera sees): warm-up, then runs for
    ``seconds`` (at least 3)."""
    encoder.encode_images(image)
    runs, start = 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - start < seconds:
        encoder.encode_images(image)
        runs += 1
    return runs / (time.perf_counter() - start)


def rank_by_speed(encoders: list, image: np.ndarray) -> list:
    """``[(rate, index)]`` fastest first: each encoder's best of TIMING_ROUNDS interleaved
    rounds of ``images_per_second``."""
    best = [0.0] * len(encoders)
    for _ in range(TIMING_ROUNDS):
        for i, encoder in enumerate(encoders):
            best[i] = max(best[i], images_per_second(encoder, image, TIMING_SECONDS))
    return sorted(((rate, i) for i, rate in enumerate(best)), key=lambda t: -t[0])


def decision_key(clip, candidates, threads) -> dict:
    """What the decision depends on. Not ``max_batch``: candidates are timed at batch 1, and
    the chosen one is verified again at the caller's ``max_batch`` at every start; so the node
    (max_batch 8) and train_adapter (encode batch 32) share one decision and one engine, and
    training features come from the engine the node serves."""
    from .verify import DEFAULT_MIN_COSINE, DEFAULT_MIN_TOP1

    return {"format": DECISION_FORMAT, "cpu": cpu_identity(), "libraries": library_versions(),
            "model": clip.identifier, "weights_hash": clip.weights_hash,
            "candidates": [[c.backend, c.precision, c.device] for c in candidates],
            "threads": threads,
            "verification": [DEFAULT_MIN_COSINE, DEFAULT_MIN_TOP1]}


def decision_path(clip, cache_dir, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return model_artifact_dir(clip, cache_dir) / f"precision-choice-{digest}.json"


def read_decision(path: Path, key: dict):
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("key") == key else None


def write_decision(path: Path, key: dict, chosen: Candidate, results: list) -> None:
    from .engine_cache import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(
        {"key": key, "chosen": [chosen.backend, chosen.precision, chosen.device],
         "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": results},
        indent=2, sort_keys=True))


def fastest_verified(clip, candidates, cache_dir, threads, max_batch, reference, selection,
                     use_cache: bool = True):
    """The fastest candidate that passes verification, or None when none does (every attempt
    is on ``selection``: refused ones with the reason, slower ones with their speed)."""
    key = decision_key(clip, candidates, threads)
    path = decision_path(clip, cache_dir, key)
    record = read_decision(path, key) if use_cache else None
    if record is not None:
        chosen = Candidate(*record["chosen"])
        encoder = try_candidate(clip, chosen, cache_dir, threads, reference, selection)
        if encoder is not None:
            for r in record["results"]:
                selection.add(r["backend"], r["precision"], r["device"], r["outcome"],
                              r["reason"] + " (cached decision)", r.get("lacks", ""))
            selection.add(chosen.backend, chosen.precision, encoder.device, "chosen",
                          f"fastest verified here, decided {record['measured_at']} "
                          f"({path.name}); re-verified now")
            return encoder
        logger.warning("cached precision decision %s no longer holds; measuring again", path)

    built = []
    for c in candidates:
        encoder = try_candidate(clip, c, cache_dir, threads, reference, selection)
        if encoder is not None:
            built.append((c, encoder))
    if not built:
        return None
    timed = []
    for rate, i in rank_by_speed([e for _, e in built], reference.inputs[:1]):
        c, encoder = built[i]
        timed.append((rate, c, encoder))
        logger.info("precision candidate %s %s: %.1f img/s at batch 1", c.backend, c.precision,
                    rate)
    best_rate, best, encoder = timed[0]
    results = []
    for rate, c, other in timed[1:]:
        other.close()
        reason = f"{rate:.1f} img/s at batch 1, slower than {best.backend} {best.precision}"
        results.append({"backend": c.backend, "precision": c.precision, "device": c.device,
                        "outcome": "slower", "reason": reason})
        selection.add(c.backend, c.precision, c.device, "slower", reason)
    refused = [a for a in selection.attempts
               if a.outcome in ("refused", "skipped", "failed") and
               (a.backend, a.precision) in {(c.backend, c.precision) for c in candidates}]
    results += [{"backend": a.backend, "precision": a.precision, "device": a.device,
                 "outcome": a.outcome, "reason": a.reason, "lacks": a.lacks} for a in refused]
    selection.add(best.backend, best.precision, encoder.device, "chosen",
                  f"fastest verified: {best_rate:.1f} img/s at batch 1")
    write_decision(path, key, best, results)
    return encoder
