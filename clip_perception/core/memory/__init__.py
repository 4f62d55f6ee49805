"""The place memory: keyframes (embedding + pose at the image stamp) in a vector store, and
queries that return the poses of the places that match a text or an image. No rclpy here:
the node (ros/memory.py) and the offline tools (cli/build_memory.py, cli/query_memory.py)
share this code."""
from .errors import ModelMismatch, PlaceMemoryError, PoseUnavailable, StoreError
from .geometry import Pose, interpolate, slerp, yaw
from .keyframes import KeyframePolicy, KeyframeSelector
from .places import Place, PlaceQuery, group_places, place_record, query_places
from .pose_buffer import PoseBuffer, PoseNotYetKnown, TopicPoseSource
from .recorder import KeyframeRecorder, Observation, Outcome
from .identity import ModelIdentity
from .store import Keyframe, KeyframeStore, open_store, stored_identity
from .transforms import TransformTree

__all__ = ["Keyframe", "KeyframePolicy", "KeyframeRecorder", "KeyframeSelector", "KeyframeStore",
           "ModelIdentity", "ModelMismatch", "Observation", "Outcome", "Place",
           "PlaceMemoryError", "PlaceQuery", "Pose", "PoseBuffer", "PoseNotYetKnown", "PoseUnavailable",
           "StoreError", "TopicPoseSource", "TransformTree", "group_places", "interpolate",
           "open_store", "place_record", "query_places", "slerp", "stored_identity", "yaw"]
