"""``ros2 run clip_perception build_memory``: a place memory from a recorded bag.

Each image's pose is taken at its own header.stamp from a pose topic (nav_msgs/Odometry,
geometry_msgs/PoseStamped or PoseWithCovarianceStamped) or from the bag's /tf + /tf_static
(--tf), and frames go through the node's keyframe rule into the memory.

With a detector's boxes (--boxes-topic, vision_msgs/Detection2DArray of the image topic) the
memory holds objects too: each box cropped and encoded as the node does, located in 3D from
the aligned depth image of its stamp (--depth-topic with --camera-info-topic) and merged with
the observations of the same thing (query_memory --objects).

Example:
    build_memory --bag run1 --image-topic /camera/image_raw --pose-topic /amcl_pose \\
        --memory ~/memories/office
    build_memory --bag run1 --image-topic /camera/color/image_raw --tf \\
        --boxes-topic /detector/boxes --depth-topic /camera/aligned_depth_to_color/image_raw \\
        --camera-info-topic /camera/aligned_depth_to_color/camera_info --memory ~/memories/lab
"""
from __future__ import annotations

import argparse
import sys

from ..core.backends import BackendUnavailable
from ..core.memory import KeyframePolicy, ModelIdentity, PlaceMemoryError, open_store
from ..core.memory.bag_boxes import BoxTopics
from ..core.memory.bag_builder import build_from_bag
from ..core.memory.objects import ObjectMergePolicy
from ..ros.detection_messages import input_boxes
from ..core.model import ModelLoadError
from .memory_arguments import (EXIT_INPUT_ERROR, add_memory_arguments, add_model_arguments,
                             load_encoders, setup_logging)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="build_memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bag", required=True, help="rosbag2 folder (mcap/sqlite3) or ROS 1 .bag")
    p.add_argument("--image-topic", required=True,
                   help="sensor_msgs/Image or CompressedImage topic in the bag")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pose-topic", help="Odometry, PoseStamped or PoseWithCovarianceStamped "
                                          "topic in the fixed frame")
    src.add_argument("--tf", action="store_true",
                     help="look the camera frame up in the bag's /tf + /tf_static")
    p.add_argument("--fixed-frame", default="map", help="frame of the stored poses (default: "
                                                        "%(default)s)")
    p.add_argument("--max-pose-gap", type=float, default=0.5, metavar="S",
                   help="largest gap between two poses bracketing an image stamp (default: "
                        "%(default)s)")
    k = KeyframePolicy()
    p.add_argument("--min-distance", type=float, default=k.min_distance, metavar="M",
                   help="new keyframe after moving this far (default: %(default)s)")
    p.add_argument("--min-angle", type=float, default=k.min_angle, metavar="RAD",
                   help="new keyframe after turning this much (default: %(default)s)")
    p.add_argument("--novelty", type=float, default=k.novelty, metavar="COS",
                   help="new keyframe when the cosine to the last one is below this; 0 = off "
                        "(default: %(default)s)")
    p.add_argument("--batch", type=int, default=16, help="frames per encoder call (default: "
                                                         "%(default)s)")
    o = p.add_argument_group("objects (labelled boxes)")
    o.add_argument("--boxes-topic", help="vision_msgs/Detection2DArray of --image-topic")
    o.add_argument("--depth-topic", default="", help="aligned depth image (16UC1 mm or 32FC1 m)")
    o.add_argument("--camera-info-topic", default="", help="CameraInfo of the depth image")
    o.add_argument("--crop-padding", type=float, default=0.1, metavar="F",
                   help="as the node's crop_padding (default: %(default)s)")
    m = ObjectMergePolicy()
    o.add_argument("--merge-distance", type=float, default=m.distance, metavar="M",
                   help="a box joins an object closer than this (default: %(default)s) ...")
    o.add_argument("--merge-similarity", type=float, default=m.similarity, metavar="COS",
                   help="... and more alike than this (default: %(default)s)")
    add_memory_arguments(p)
    add_model_arguments(p, required=True)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        policy = KeyframePolicy(args.min_distance, args.min_angle, args.novelty)
        if args.batch < 1 or not args.max_pose_gap > 0:
            raise PlaceMemoryError(f"--batch must be >= 1 and --max-pose-gap > 0, got "
                                   f"{args.batch} and {args.max_pose_gap}")
        boxes = None
        if args.boxes_topic:
            boxes = BoxTopics(args.boxes_topic, args.depth_topic, args.camera_info_topic,
                              args.crop_padding)
        elif args.depth_topic or args.camera_info_topic:
            raise PlaceMemoryError("--depth-topic and --camera-info-topic need --boxes-topic")
        merge = ObjectMergePolicy(args.merge_distance, args.merge_similarity)
        enc = load_encoders(args)
        store = open_store(args.memory, ModelIdentity.of(enc.clip), args.collection)
        try:
            before = store.count()
            report = build_from_bag(
                args.bag, args.image_topic, store, enc.images, pose_topic=args.pose_topic,
                use_tf=args.tf, fixed_frame=args.fixed_frame, max_pose_gap=args.max_pose_gap,
                policy=policy, batch=args.batch, boxes=boxes, input_boxes=input_boxes,
                merge=merge)
            total = store.count()
        finally:
            store.close()
    except (PlaceMemoryError, ModelLoadError, BackendUnavailable, ValueError) as exc:
        print(f"build_memory: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    c = report.counts
    print(f"{report.images} images, {report.pose_samples} pose samples: {c['stored']} keyframes "
          f"stored, {c['not a keyframe']} not keyframes, {c['no pose']} without a pose, "
          f"{report.unreadable} unreadable messages")
    for kind, reasons in report.examples.items():
        for reason in reasons:
            print(f"  {kind}: {reason}")
    if boxes is not None:
        print("objects: " + ", ".join(f"{v} {k}" for k, v in sorted(report.objects.items())))
    print(f"memory {store.where}: {before} -> {total} keyframes ({enc.clip.identifier})")
    return 0 if c["stored"] else EXIT_INPUT_ERROR


if __name__ == "__main__":
    sys.exit(main())
