"""The fleet path for real: a Milvus standalone server (PyPI ``milvus`` 2.3.5, pinned in
requirements.txt) started by this test on 127.0.0.1 and stopped after; the same store code as
the embedded file writes and finds keyframes and objects through it, a reconnect finds them
again, another model is refused. Skipped with the reason only where the server cannot start.
It takes ~20-35 s on 2 shared cores, most of it the server starting (its binary is unpacked
and etcd, rocksmq and the coordinators come up): the only way to test the fleet path for real."""
import numpy as np
import pytest

from milvus_server import milvus_server, why_not_available
from object_scenes import OBJECTS
from clip_perception.core.memory import (Keyframe, ModelIdentity, ModelMismatch, Pose,
                                         open_store, query_places, stored_identity)
from clip_perception.core.memory.object_query import query_objects
from clip_perception.core.memory.object_recorder import ObjectRecorder
from clip_perception.core.memory.object_store import open_object_store
from clip_perception.core.memory.objects import ObjectMergePolicy

reason = why_not_available()
pytestmark = pytest.mark.skipif(bool(reason), reason=reason)

MODEL = ModelIdentity("tiny/a", "a" * 64, 8, ("tiny", ""))


@pytest.fixture(scope="module")
def server_uri(tmp_path_factory):
    with milvus_server(tmp_path_factory.mktemp("milvus_server")) as (uri, version, _):
        assert version.startswith("2.3")
        yield uri


def test_keyframes_and_objects_through_a_milvus_server(server_uri):
    from test_memory_objects import poses_for_drive, scene_frames

    rng = np.random.default_rng(7)
    embs = rng.normal(size=(30, 8)).astype(np.float32)
    embs /= np.linalg.norm(embs, axis=1, keepdims=True)
    store = open_store(server_uri, MODEL, "server_test")
    assert store.uri == server_uri and store.count() == 0
    ids = store.insert([Keyframe(e, Pose((i, 0, 0), frame_id="map"), i, "cam")
                        for i, e in enumerate(embs)])
    objects = open_object_store(store)
    base, frames = scene_frames(rng)
    ObjectRecorder(objects, poses_for_drive(), ObjectMergePolicy(0.5, 0.8)).add(frames)
    objects.close()
    store.close()

    # a reconnect (another robot, or a restart) finds both, and knows the model without one
    assert stored_identity(server_uri, "server_test") == MODEL
    store = open_store(server_uri, MODEL, "server_test")
    objects = open_object_store(store)
    assert store.count() == 30 and objects.count() == 2
    # written just now: fresh (a query may otherwise be served before the server's next tick)
    best = query_places(store, embs[11][None], k=1, min_separation=0.5, fresh=True).places[0]
    assert best.keyframe.keyframe_id == ids[11] and best.score == pytest.approx(1.0, abs=1e-5)
    for name, where in OBJECTS.items():
        m = query_objects(objects, base[name][None], k=1, fresh=True).matches[0]
        assert m.object.observations == len(frames)
        assert np.linalg.norm(m.object.position - np.array(where)) < 0.02
    objects.close()
    store.close()
    with pytest.raises(ModelMismatch, match="built with model tiny/a"):
        open_store(server_uri, ModelIdentity("tiny/b", "b" * 64, 8), "server_test")
