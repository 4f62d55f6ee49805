"""Build-once cache for derived inference artifacts (TensorRT engines, int8 ONNX models).

An artifact is keyed by everything that changes its bytes or validity: model identifier,
weights hash, precision, input shape, batch profile, library version and device (GPU name +
compute capability for TensorRT). Same key: load, never rebuild. Changed key: a different file
is built. A file that is missing its key record, records another key, or fails to load is
rebuilt with a warning. After every build or load the artifact is verified (see verify.py);
a refused artifact is never served. (A verification is any object with ``ok``: verify.py's
``Verification``; this module does not import verify, which builds on it.)

Builder, loader and verifier are plain callables, so this logic is tested without a GPU.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Generic, Optional, TypeVar

from .base import BackendUnavailable

logger = logging.getLogger(__name__)
T = TypeVar("T")
KEY_FORMAT = 1  # bump when the key's meaning changes, so old files are never reused


@dataclass(frozen=True)
class ArtifactKey:
    kind: str                 # "tensorrt" | "onnxruntime-int8"
    model: str                # ClipModel.identifier
    weights_hash: str         # ClipModel.weights_hash (full hex)
    precision: str            # fp32 | fp16 | int8
    input_shape: tuple        # (3, S, S), batch excluded
    batch_profile: tuple      # (min, opt, max) for engines; () when the batch axis is free
    library: str              # e.g. "tensorrt 10.3.0", "onnxruntime 1.31.1"
    device: str               # e.g. "NVIDIA Orin sm_87", "cpu"
    options: tuple = ()       # builder options that change the artifact, as (name, value) pairs

    def to_dict(self) -> dict:
        d = asdict(self)
        d["key_format"] = KEY_FORMAT
        # JSON has no tuples; normalise so a round-tripped record compares equal.
        return json.loads(json.dumps(d))

    def digest(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def filename(self, suffix: str) -> str:
        return f"{self.kind}-{self.precision}-{self.digest()}{suffix}"


class ArtifactRefused(BackendUnavailable):
    """The artifact built or loaded fine but failed verification against the reference."""

    def __init__(self, message: str, verification, path: Path):
        super().__init__(message)
        self.verification = verification
        self.path = path


class ArtifactBuildFailed(BackendUnavailable):
    """The builder raised; the message carries its error."""


@dataclass
class CachedArtifact(Generic[T]):
    value: T
    path: Path
    key: ArtifactKey
    built: bool                 # True when this call built the file, False when it was loaded
    verification: Optional[object]  # verify.Verification
    events: list = field(default_factory=list)  # human-readable history (for diagnostics)


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_record(path: Path) -> Optional[dict]:
    try:
        return json.loads(_record_path(path).read_text())
    except (OSError, ValueError):
        return None


def atomic_write(path: Path, text: str | bytes) -> None:
    """Readers see the old file or the whole new one, never a torn write."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _close(value) -> None:
    close = getattr(value, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # closing a refused artifact must not hide the refusal
            logger.debug("closing %r failed", value, exc_info=True)


def get_or_build(directory: str | os.PathLike, key: ArtifactKey, suffix: str,
                 build: Callable[[Path], None], load: Callable[[Path], T],
                 verify: Optional[Callable[[T], object]] = None,
                 force_rebuild: bool = False) -> CachedArtifact[T]:
    """Return the verified artifact for ``key``, building it only when needed.

    ``build(path)`` must write the artifact to ``path`` (a temporary name in the cache folder;
    it is renamed into place only after ``build`` returns, so an interrupted build never leaves
    a file that looks valid). ``load(path)`` turns the file into a usable object and raises if
    the file is unusable. ``verify(obj)`` compares it with the reference.
    Raises ArtifactBuildFailed when building fails and ArtifactRefused when verification fails.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / key.filename(suffix)
    events: list[str] = []
    # One builder per artifact on this machine: a second node (process) waits here, then
    # finds the file built and loads it.
    with artifact_lock(path):
        remove_partials(path, events)
        value, built = _load_or_build(directory, path, key, suffix, build, load, force_rebuild,
                                      events)

    verification = None
    if verify is not None:
        verification = verify(value)
        if not verification.ok:
            _close(value)
            msg = f"{key.kind} {key.precision} artifact {path} refused: {verification}"
            events.append(msg)
            logger.warning(msg)
            raise ArtifactRefused(msg, verification, path)
        events.append(f"verified: {verification}")
    return CachedArtifact(value, path, key, built, verification, events)


@contextlib.contextmanager
def artifact_lock(path: Path):
    """An exclusive fcntl lock on ``<artifact>.lock``, held while the artifact is checked or
    built (released by the kernel if the process dies)."""
    with open(path.with_name(path.name + ".lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_partials(path: Path, events: list) -> None:
    """Temporary files/folders an interrupted build of ``path`` left (called under its lock, so
    no live build of the same artifact owns them)."""
    for partial in path.parent.glob(f"{path.stem}.*.partial"):
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
        msg = f"removed {partial.name}, left by an interrupted build"
        logger.warning(msg)
        events.append(msg)


def _load_or_build(directory, path, key, suffix, build, load, force_rebuild, events):
    value = None
    if path.is_file() and not force_rebuild:
        record = read_record(path)
        if record is None or record.get("key") != key.to_dict():
            msg = (f"cached {key.kind} artifact {path} has no matching key record "
                   f"(interrupted write or foreign file); rebuilding")
            logger.warning(msg)
            events.append(msg)
        else:
            try:
                value = load(path)
                events.append(f"loaded cached {key.kind} artifact {path}")
                logger.info("loaded cached %s artifact %s", key.kind, path)
            except Exception as exc:
                msg = (f"cached {key.kind} artifact {path} could not be loaded "
                       f"({type(exc).__name__}: {exc}); rebuilding")
                logger.warning(msg)
                events.append(msg)
    elif force_rebuild and path.is_file():
        events.append(f"rebuild of {path} forced")

    if value is not None:
        return value, False
    return _build_and_load(directory, path, key, suffix, build, load, events), True


def _build_and_load(directory, path, key, suffix, build, load, events):
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=path.stem + ".", suffix=suffix + ".partial")
    os.close(fd)
    tmp = Path(tmp)
    start = time.monotonic()
    logger.info("building %s %s artifact for %s (this can take minutes for engines)",
                key.kind, key.precision, key.model)
    try:
        try:
            build(tmp)
        except BackendUnavailable:
            raise
        except Exception as exc:
            raise ArtifactBuildFailed(f"building the {key.kind} {key.precision} artifact for "
                                      f"{key.model} failed: {type(exc).__name__}: {exc}") from exc
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise ArtifactBuildFailed(f"{key.kind} builder wrote nothing to {tmp}")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    seconds = time.monotonic() - start
    atomic_write(_record_path(path), json.dumps(
        {"key": key.to_dict(), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
         "build_seconds": round(seconds, 2)}, indent=2, sort_keys=True))
    events.append(f"built {key.kind} artifact {path} in {seconds:.1f} s")
    logger.info("built %s artifact %s in %.1f s", key.kind, path, seconds)
    return load(path)
