"""A transform tree read from recorded /tf and /tf_static (for bags; the node uses tf2).

Each edge parent -> child is either static or a PoseBuffer. ``pose_at(frame, stamp)`` chains
the edges from the fixed frame to ``frame`` through their common ancestor, each dynamic edge
interpolated at the stamp, like tf2's ``lookup_transform(fixed, frame, stamp)``.
"""
from __future__ import annotations

from typing import Optional

from .errors import PoseUnavailable
from .geometry import Pose
from .pose_buffer import PoseBuffer


class TransformTree:
    def __init__(self, fixed_frame: str, max_gap: float, horizon: float = 1e9):
        self.fixed_frame = fixed_frame
        self.max_gap = max_gap
        self._horizon = horizon  # a bag is read in full, so keep everything by default
        self._parent: dict[str, str] = {}
        self._static: dict[str, Pose] = {}
        self._dynamic: dict[str, PoseBuffer] = {}

    def add(self, parent: str, child: str, stamp_ns: int, pose: Pose, static: bool) -> None:
        """``pose``: the child frame's pose in ``parent`` (a TransformStamped)."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        known = self._parent.get(child)
        if known is not None and known != parent:
            raise PoseUnavailable(f"frame '{child}' has two parents, '{known}' and '{parent}'; a "
                                  f"transform tree needs exactly one")
        self._parent[child] = parent
        if static:
            self._static[child] = pose
        else:
            self._dynamic.setdefault(child, PoseBuffer(self._horizon)).add(stamp_ns, pose)

    def _edge(self, child: str, stamp_ns: int) -> Pose:
        if child in self._static:
            return self._static[child]
        try:
            return self._dynamic[child].lookup(stamp_ns, self.max_gap)
        except PoseUnavailable as exc:
            raise type(exc)(f"transform {self._parent[child]} -> {child}: {exc}") from None

    def _chain(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._parent:
            chain.append(self._parent[chain[-1]])
            if len(chain) > 1000:
                raise PoseUnavailable(f"transform tree has a loop above '{frame}'")
        return chain

    def _pose_in_ancestor(self, chain: list[str], ancestor: str, stamp_ns: int) -> Pose:
        pose = Pose((0.0, 0.0, 0.0))
        for frame in chain[:chain.index(ancestor)]:
            pose = self._edge(frame, stamp_ns).compose(pose)
        return pose

    def pose_at(self, frame_id: str, stamp_ns: int) -> Pose:
        """Pose of ``frame_id`` in the fixed frame at ``stamp_ns``."""
        frame = frame_id.lstrip("/")
        source, target = self._chain(frame), self._chain(self.fixed_frame)
        common: Optional[str] = next((f for f in source if f in set(target)), None)
        if common is None:
            raise PoseUnavailable(f"no transform between '{self.fixed_frame}' and '{frame}': "
                                  f"they are in different trees (known frames: "
                                  f"{sorted(set(self._parent) | set(self._parent.values()))})")
        in_common = self._pose_in_ancestor(source, common, stamp_ns)
        fixed_in_common = self._pose_in_ancestor(target, common, stamp_ns)
        p = fixed_in_common.inverse().compose(in_common)
        return Pose(p.position, p.orientation, self.fixed_frame)

    def describe(self) -> str:
        return f"recorded /tf into '{self.fixed_frame}', max gap {self.max_gap:.3f} s"
