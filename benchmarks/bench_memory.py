"""Place memory speed on this machine: query latency at 10k and 100k keyframes (p50/p95, text
encode excluded) on the embedded store (Milvus Lite) and, side by side, on a real Milvus server
started here (PyPI ``milvus`` 2.3.5 on 127.0.0.1; --no-server skips it), numpy brute force on
the same rows beside both; keyframe insert rate through the node's recorder, and frames with
several labelled boxes through the keyframe + object recorders, against a 30 Hz camera; disk
per keyframe. With --candidates also Chroma's HNSW (recall@100 against exact cosine). 512-d
embeddings (ViT-B-32's size), real JPEG thumbnails.

    python benchmarks/bench_memory.py [--sizes 10000 100000] [--queries 100] [--candidates]
                                      [--boxes 5] [--no-server] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))

DIM = 512
CAMERA_HZ = 30.0


def unit_rows(rng, n):
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load() -> float:
    """1-minute load average (other sessions share these cores: numbers are noisy above ~2)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def bench_recorder(root: Path, thumb_rgb, n: int) -> dict:
    """Frames one by one through KeyframeRecorder.add (pose lookup, rule, thumbnail, insert),
    every frame a keyframe (the worst case: the rule keeps fewer)."""
    from clip_perception.core.memory import (KeyframePolicy, KeyframeRecorder, KeyframeSelector,
                                             ModelIdentity, Observation, Pose, TopicPoseSource,
                                             open_store)

    store = open_store(str(root / "recorder"), ModelIdentity("bench", "0" * 64, DIM))
    poses = TopicPoseSource("map", max_gap=1.0, horizon=1e9)
    for i in range(n + 2):
        poses.add(i * 10 ** 8, Pose((i * 1.0, 0, 0), frame_id="map"))
    rec = KeyframeRecorder(store, poses, KeyframeSelector(KeyframePolicy(0.5, 0.35, 0.0)))
    emb = unit_rows(np.random.default_rng(0), n)
    t0 = time.perf_counter()
    for i in range(n):
        rec.add([Observation("cam", "cam", i * 10 ** 8, emb[i], thumb_rgb)])
    dt = time.perf_counter() - t0
    stored = rec.counts["stored"]
    store.close()
    return {"frames": n, "stored": stored, "seconds": dt, "keyframes_per_s": stored / dt,
            "vs_30hz_camera": stored / dt / CAMERA_HZ}


def bench_objects(root: Path, thumb_rgb, n: int, boxes: int, uri: str = "") -> dict:
    """Frames with ``boxes`` labelled boxes (with depth) each through the keyframe and object
    recorders (candidate search in the store, merge, one upsert), as the node's memory thread
    records them: (1) one frame per call, as fast as they go (capacity); (2) frames arriving
    at 30 Hz from another thread, the recorder taking whatever is waiting in one call (what
    ros/memory.py does): does it keep up, how far behind does it fall. Half of each frame's
    boxes are things seen in the frame before (merged), half new."""
    import queue
    import threading

    from clip_perception.core.detections.results import FrameDetections, LabelledBox
    from clip_perception.core.memory import (KeyframePolicy, KeyframeRecorder, KeyframeSelector,
                                             ModelIdentity, Observation, Pose, TopicPoseSource,
                                             open_store)
    from clip_perception.core.memory.object_recorder import MERGED, NEW, ObjectRecorder
    from clip_perception.core.memory.object_store import open_object_store

    rng = np.random.default_rng(0)
    frames_emb, things = unit_rows(rng, 2 * n), unit_rows(rng, 2 * n * boxes)
    crop = thumb_rgb[:96, :96].copy()
    seen_again = boxes // 2

    def inputs(i):
        stamp = i * 10 ** 8 // 3  # 30 Hz stamps
        ks = [i * boxes + b for b in range(boxes - seen_again)] + \
            [(i - 1) * boxes + b for b in range(seen_again) if i > 0]
        return (Observation("cam", "cam", stamp, frames_emb[i], thumb_rgb),
                FrameDetections("cam", stamp, "cam", tuple(
                    LabelledBox(index=b, id=str(b), bbox=(100.0, 100.0, 80.0, 80.0),
                                embedding=things[k], hypotheses=(("thing", 0.9),),
                                source_hypotheses=(), frame_id="cam", crop=crop, size=None,
                                position=np.array([0.3 * (k % 5), 0.0, 2.0]))
                    for b, k in enumerate(ks))))

    def run(name, paced):
        store = open_store(uri or str(root / "objects"), ModelIdentity("bench", "0" * 64, DIM),
                           f"objects_{name}")
        objects = open_object_store(store)
        poses = TopicPoseSource("map", max_gap=1.0, horizon=1e9)
        for i in range(-1, 2 * n + 2):
            poses.add(i * 10 ** 8 // 3, Pose((i * 0.03, 0, 0), frame_id="map"))
        keyframes = KeyframeRecorder(store, poses, KeyframeSelector(KeyframePolicy(0.5, 0.35,
                                                                                   0.0)))
        recorder = ObjectRecorder(objects, poses)
        first = n if paced else 0  # other stamps than the first run's
        calls, backlog = 0, 0
        t0 = time.perf_counter()
        if not paced:
            for i in range(first, first + n):
                kf, fd = inputs(i)
                keyframes.add([kf])
                recorder.add([fd])
                calls += 1
        else:
            q: queue.Queue = queue.Queue()

            def camera():
                for i in range(first, first + n):
                    q.put(inputs(i))
                    time.sleep(max(0.0, t0 + (i - first + 1) / CAMERA_HZ - time.perf_counter()))
                q.put(None)
            threading.Thread(target=camera, daemon=True).start()
            done = False
            while not done:
                got = [q.get()]
                while True:
                    try:
                        got.append(q.get_nowait())
                    except queue.Empty:
                        break
                done = got[-1] is None
                got = [g for g in got if g is not None]
                backlog = max(backlog, len(got))
                if got:
                    keyframes.add([kf for kf, _ in got])
                    recorder.add([fd for _, fd in got])
                    calls += 1
        dt = time.perf_counter() - t0
        written = recorder.counts[NEW] + recorder.counts[MERGED]
        out = {"frames": n, "boxes_per_frame": boxes, "seconds": dt, "frames_per_s": n / dt,
               "vs_30hz_camera": n / dt / CAMERA_HZ, "store_calls": calls,
               "most_frames_waiting": backlog, "keyframes_stored": keyframes.counts["stored"],
               "box_observations_per_s": written / dt, "new_objects": recorder.counts[NEW],
               "merged_observations": recorder.counts[MERGED], "objects_in_store":
               objects.count(), "load_average": load()}
        objects.close()
        store.close()
        return out

    return {"one_frame_per_call": run("capacity", False), "camera_30hz": run("paced", True)}


def chroma_candidate(root: Path, matrix: np.ndarray, q: np.ndarray, thumbnail: str) -> dict:
    """A candidate store measured side by side (issue 12 section 5), not the shipped one:
    Chroma embedded (chromadb PersistentClient, HNSW, IP over unit vectors), the same rows and
    thumbnails, one search of the 100 nearest with their vectors and poses, recall@100 against
    exact cosine. None when chromadb is not installed (requirements.txt does not have it)."""
    try:
        import chromadb
        from chromadb.config import Settings
    except ImportError:
        return None
    c = chromadb.PersistentClient(str(root / f"chroma_{len(matrix)}"),
                                  settings=Settings(anonymized_telemetry=False))
    col = c.create_collection("places", embedding_function=None, configuration={"hnsw": {
        "space": "ip", "max_neighbors": 32, "ef_construction": 200, "ef_search": 400}})

    def meta(i):
        return {"x": 0.0, "y": 0.0, "z": 0.0, "frame_id": "map", "stamp_ns": i, "camera": "cam"}

    t0 = time.perf_counter()
    singles = 20  # one keyframe per call, as the recorder inserts
    for i in range(singles):
        col.add(ids=[str(i)], embeddings=matrix[i:i + 1], metadatas=[meta(i)],
                documents=[thumbnail])
    single_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for start in range(singles, len(matrix), 2000):
        part = range(start, min(start + 2000, len(matrix)))
        col.add(ids=[str(i) for i in part], embeddings=matrix[part.start:part.stop],
                metadatas=[meta(i) for i in part], documents=[thumbnail] * len(part))
    bulk_s = time.perf_counter() - t0
    times, recall = [], []
    for i, v in enumerate(q):
        t = time.perf_counter()
        r = col.query(query_embeddings=v[None], n_results=100,
                      include=["embeddings", "metadatas"])
        if i < 5:  # warm-up
            continue
        times.append((time.perf_counter() - t) * 1000)
        exact = set(np.argpartition(-(matrix @ v), 100)[:100].tolist())
        recall.append(len(exact & {int(k) for k in r["ids"][0]}) / 100)
    c.close()
    return {"search_ms_p50": percentile(times, 50), "search_ms_p95": percentile(times, 95),
            "recall_at_100_mean": float(np.mean(recall)),
            "recall_at_100_min": float(np.min(recall)),
            "single_insert_per_s": singles / single_s,
            "bulk_insert_per_s": (len(matrix) - singles) / bulk_s,
            "disk_bytes_per_keyframe": folder_bytes(root / f"chroma_{len(matrix)}") / len(matrix)}


def bench_size(root: Path, n: int, queries: int, thumbnail: str, rng, chroma: bool,
               uri: str = "") -> dict:
    """``uri``: a server's (the rows go into a collection of their own); else a file in root."""
    from clip_perception.core.memory import Keyframe, ModelIdentity, Pose, open_store, query_places
    from clip_perception.core.memory.store import FLUSH_EVERY

    folder = root / f"store_{n}"
    store = open_store(uri or str(folder), ModelIdentity("bench", "0" * 64, DIM), f"places_{n}")
    t0 = time.perf_counter()
    batch = 2000
    everything = []
    for start in range(0, n, batch):
        emb = unit_rows(rng, min(batch, n - start))
        everything.append(emb)
        xy = rng.uniform(0, 200, size=(len(emb), 2))
        store.insert([Keyframe(e, Pose((x, y, 0.0), frame_id="map"), (start + i) * 10 ** 8,
                               "cam", thumbnail) for i, (e, (x, y)) in enumerate(zip(emb, xy))])
    load_s = time.perf_counter() - t0
    assert store.count() == n
    n += FLUSH_EVERY - 1
    q = unit_rows(rng, queries + 5)

    def measure():
        for v in q[:5]:  # warm-up
            query_places(store, v[None], k=3, min_separation=1.0)
        full, search = [], []
        for v in q[5:]:
            t = time.perf_counter()
            query_places(store, v[None], k=3, min_separation=1.0)
            full.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            store.search(v[None], 100)
            search.append((time.perf_counter() - t) * 1000)
        return {"query_ms_p50": percentile(full, 50), "query_ms_p95": percentile(full, 95),
                "search_only_ms_p50": percentile(search, 50),
                "search_only_ms_p95": percentile(search, 95)}

    matrix = np.concatenate(everything)
    brute = []  # reference: exact top-100 by one numpy matrix product over every embedding
    for v in q[5:]:
        t = time.perf_counter()
        np.argpartition(-(matrix @ v), 100)[:100]
        brute.append((time.perf_counter() - t) * 1000)
    numpy_ms = {"p50": percentile(brute, 50), "p95": percentile(brute, 95)}
    # the store seals every FLUSH_EVERY rows; the worst case a recording robot sees is
    # FLUSH_EVERY - 1 unsealed rows on top of the sealed ones
    for i in range(FLUSH_EVERY - 1):
        store.insert([Keyframe(unit_rows(rng, 1)[0], Pose((0.0, 0.0, 0.0), frame_id="map"),
                               i, "cam", thumbnail)])
    growing = measure()
    t0 = time.perf_counter()
    store.flush()
    flush_s = time.perf_counter() - t0
    sealed = measure()  # everything sealed (the store flushes on close: every restart is this)
    store.close()
    disk = 0 if uri else folder_bytes(folder)
    out = {"keyframes": n, "bulk_load_s": load_s, "bulk_keyframes_per_s": n / load_s,
           "flush_s": flush_s, "growing": growing, "sealed": sealed,
           "numpy_brute_force_top100_ms": numpy_ms,
           "disk_bytes": disk, "disk_bytes_per_keyframe": disk / n, "load_average": load()}
    if chroma:  # same rows and queries, same run
        out["chroma_candidate"] = chroma_candidate(root, matrix, q, thumbnail)
    return out


def print_size(where: str, n: int, s: dict, candidates: bool) -> None:
    for phase in ("growing", "sealed"):  # growing: FLUSH_EVERY - 1 rows not sealed
        m = s[phase]
        print(f"{where:>14} {n:>7} keyframes, {phase:>7}: query p50 {m['query_ms_p50']:.1f} ms, "
              f"p95 {m['query_ms_p95']:.1f} ms (search alone p50 {m['search_only_ms_p50']:.1f} / "
              f"p95 {m['search_only_ms_p95']:.1f} ms)")
    ch = s.get("chroma_candidate")
    if candidates and not ch:
        print("Chroma candidate not measured: chromadb is not installed")
    if ch:
        print(f"{n:>7} keyframes, Chroma HNSW (candidate): search p50 "
              f"{ch['search_ms_p50']:.1f} / p95 {ch['search_ms_p95']:.1f} ms, recall@100 "
              f"mean {ch['recall_at_100_mean']:.3f} min {ch['recall_at_100_min']:.2f}, "
              f"insert {ch['single_insert_per_s']:.0f}/s one by one, "
              f"{ch['bulk_insert_per_s']:.0f}/s bulk, disk "
              f"{ch['disk_bytes_per_keyframe'] / 1024:.1f} KiB per keyframe")
    np_ms = s["numpy_brute_force_top100_ms"]
    print(f"{where:>14} {n:>7} keyframes: numpy brute-force top-100 on the same rows p50 "
          f"{np_ms['p50']:.1f} / p95 {np_ms['p95']:.1f} ms; bulk load "
          f"{s['bulk_keyframes_per_s']:.0f}/s, flush {s['flush_s']:.1f} s"
          + (f", disk {s['disk_bytes_per_keyframe'] / 1024:.1f} KiB per keyframe"
             if s["disk_bytes"] else "") + f" (load {s['load_average']:.1f})")


def print_objects(where: str, r: dict) -> None:
    one, paced = r["one_frame_per_call"], r["camera_30hz"]
    print(f"{where:>14} recorder with objects ({one['boxes_per_frame']} boxes per frame + the "
          f"frame's keyframe): one frame per call {one['frames_per_s']:.1f} frames/s = "
          f"{one['vs_30hz_camera']:.2f}x a 30 Hz camera ({one['box_observations_per_s']:.0f} box "
          f"observations/s); frames arriving at 30 Hz, what waits taken in one call: "
          f"{paced['frames_per_s']:.1f} frames/s, {paced['box_observations_per_s']:.0f} box "
          f"observations/s, at most {paced['most_frames_waiting']} frames waiting, "
          f"{paced['store_calls']} calls ({paced['new_objects']} new objects, "
          f"{paced['merged_observations']} merged; load {paced['load_average']:.1f})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--recorder-frames", type=int, default=300)
    p.add_argument("--boxes", type=int, default=5, help="labelled boxes per frame for the "
                                                        "object recorder (default: %(default)s)")
    p.add_argument("--no-server", action="store_true",
                   help="measure the embedded store only (no Milvus server started)")
    p.add_argument("--candidates", action="store_true",
                   help="also measure Chroma (a candidate store, if chromadb is installed)")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)

    import milvus_lite
    import pymilvus
    from conftest import natural_like_image
    from milvus_server import milvus_server, why_not_available
    from clip_perception.core.memory.thumbnails import encode_thumbnail

    frame = natural_like_image(480, 640, seed=3)
    thumbnail = encode_thumbnail(frame)
    out = {"cpu": cpu_name(), "cores": len(os.sched_getaffinity(0)), "dim": DIM,
           "thumbnail_chars": len(thumbnail), "load_average_start": load(),
           "store": f"Milvus Lite {milvus_lite.__version__} (pymilvus {pymilvus.__version__} "
                    f"MilvusClient, FLAT, IP over unit vectors)"}
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        root = Path(tmp)
        out["recorder"] = bench_recorder(root, frame, args.recorder_frames)
        r = out["recorder"]
        print(f"recorder (640x480 frame -> thumbnail, pose, insert; one frame per call): "
              f"{r['keyframes_per_s']:.0f} keyframes/s = {r['vs_30hz_camera']:.1f}x a 30 Hz camera")
        out["objects"] = bench_objects(root, frame, args.recorder_frames, args.boxes)
        print_objects("embedded", out["objects"])
        out["sizes"] = []
        rng = np.random.default_rng(1)
        for n in args.sizes:
            out["sizes"].append(bench_size(root, n, args.queries, thumbnail, rng, args.candidates))
            print_size("embedded", n, out["sizes"][-1], args.candidates)
        reason = "--no-server" if args.no_server else why_not_available()
        if reason:
            print(f"Milvus server not measured: {reason}")
            out["server"] = {"skipped": reason}
        else:
            with milvus_server(root / "milvus_server") as (uri, version, start_s):
                print(f"Milvus server {version} started on {uri} in {start_s:.1f} s")
                srv = out["server"] = {"version": version, "start_s": start_s, "sizes": []}
                srv["objects"] = bench_objects(root, frame, args.recorder_frames, args.boxes,
                                               uri)
                print_objects(f"server {version}", srv["objects"])
                rng = np.random.default_rng(1)  # the same rows and queries as embedded
                for n in args.sizes:
                    srv["sizes"].append(bench_size(root, n, args.queries, thumbnail, rng, False,
                                                   uri))
                    print_size(f"server {version}", n, srv["sizes"][-1], False)
    out["load_average_end"] = load()
    print(f"CPU: {out['cores']} cores of {out['cpu']}; load average {out['load_average_start']:.1f}"
          f" at start, {out['load_average_end']:.1f} at end")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
