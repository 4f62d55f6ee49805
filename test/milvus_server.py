"""A real Milvus standalone server on 127.0.0.1 for tests and benchmarks: PyPI's ``milvus``
package (2.3.5, the embedded-Milvus launcher, pinned in requirements.txt) bundles the server
binary. Everything it writes (binary, config, data, logs) goes under the given folder."""
from __future__ import annotations

import contextlib
import socket
import sys
import time
from pathlib import Path

START_TIMEOUT = 180.0  # s; ~7 s on a quiet machine, far more on a loaded one


def _import_milvus():
    from milvus import MilvusServer, __version__

    return MilvusServer, __version__


def why_not_available() -> str:
    """'' when a server can be started here, else the reason."""
    try:
        _import_milvus()
    except ImportError as exc:
        return (f"the Milvus server package is not installed ({exc}); requirements.txt pins "
                f"milvus==2.3.5 (bash scripts/setup_venv.sh)")
    if not sys.platform.startswith("linux"):
        return f"the bundled Milvus server binary is for Linux, this is {sys.platform}"
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def milvus_server(folder: Path):
    """Yields (uri, version, seconds it took to start) of a started server; stops it on exit. Raises RuntimeError with
    the server's log tail when it does not start."""
    MilvusServer, version = _import_milvus()
    folder.mkdir(parents=True, exist_ok=True)
    server = MilvusServer(wait_for_started=False)
    server.set_base_dir(str(folder))
    server.listen_port = free_port()
    t0 = time.monotonic()
    server.start()
    try:
        try:
            server.wait_started(timeout=int(START_TIMEOUT * 1000))
        except (TimeoutError, RuntimeError) as exc:
            log = folder / "logs" / "milvus-stderr.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
            raise RuntimeError(f"Milvus {version} server did not start: {exc}\n{tail}") from exc
        yield f"http://127.0.0.1:{server.listen_port}", version, time.monotonic() - t0
    finally:
        server.stop()
