"""Which model made a memory's embeddings, recorded on its collections and checked on open:
cosines between two models' embeddings mean nothing, so opening a memory with another model
raises ModelMismatch with both named.

The record is JSON in the collection's description, written at creation: Milvus Lite 2.5 does
not implement altering collection properties (where earlier releases kept it; still read)."""
from __future__ import annotations

import json
from dataclasses import dataclass

from .errors import ModelMismatch, StoreError

SCHEMA_VERSION = "1"
PROP_PREFIX = "clip_perception."


@dataclass(frozen=True)
class ModelIdentity:
    """What makes embeddings comparable: the weights (hash) and their size."""

    identifier: str
    weights_hash: str
    embed_dim: int
    load: tuple[str, str] = ("", "")  # load_clip's (model, pretrained): query tools need no --model

    @classmethod
    def of(cls, clip) -> "ModelIdentity":
        return cls(clip.identifier, clip.weights_hash, int(clip.embed_dim),
                   (clip.model_name, clip.pretrained or ""))

    def properties(self) -> dict[str, str]:
        return {PROP_PREFIX + "model": self.identifier, PROP_PREFIX + "weights": self.weights_hash,
                PROP_PREFIX + "dim": str(self.embed_dim), PROP_PREFIX + "schema": SCHEMA_VERSION,
                PROP_PREFIX + "load_model": self.load[0],
                PROP_PREFIX + "load_pretrained": self.load[1]}

    def description(self) -> str:
        return json.dumps(self.properties(), sort_keys=True)

    @classmethod
    def of_collection(cls, described: dict, where: str) -> "ModelIdentity":
        """From describe_collection's answer: the description's JSON, else the properties."""
        props = dict(described.get("properties") or {})
        try:
            record = json.loads(described.get("description") or "{}")
        except ValueError:
            record = {}
        if isinstance(record, dict):
            props.update(record)
        return cls.from_properties(props, where)

    @classmethod
    def from_properties(cls, props: dict, where: str) -> "ModelIdentity":
        try:
            return cls(props[PROP_PREFIX + "model"], props[PROP_PREFIX + "weights"],
                       int(props[PROP_PREFIX + "dim"]),
                       (props.get(PROP_PREFIX + "load_model", ""),
                        props.get(PROP_PREFIX + "load_pretrained", "")))
        except (KeyError, ValueError) as exc:
            raise StoreError(f"{where} exists but has no clip_perception model record ({exc}); "
                             f"it was not made by clip_perception, use another collection") \
                from None

    def require_same(self, stored: "ModelIdentity", where: str) -> None:
        if stored.weights_hash != self.weights_hash or stored.embed_dim != self.embed_dim:
            raise ModelMismatch(
                f"{where} was built with model {stored.identifier} (weights "
                f"{stored.weights_hash[:12]}, {stored.embed_dim}-d) but this is "
                f"{self.identifier} (weights {self.weights_hash[:12]}, {self.embed_dim}-d); "
                f"embeddings of different models cannot be compared: use that model, another "
                f"memory.uri/collection, or clear the memory")

