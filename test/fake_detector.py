"""A stand-in for another detector, run as its own process by the tests and the benchmark:
subscribes to a camera and publishes, for every frame it receives, a vision_msgs/
Detection2DArray with the frame's header and ``--boxes`` boxes laid out on a grid (class_id =
the box's index as a string, score unset: as ROS2-NanoOWL sends them).

    python test/fake_detector.py --camera /cam/image_raw --output /cam/boxes --boxes 4
"""
from __future__ import annotations

import argparse
import math
import sys


def grid_boxes(width: int, height: int, count: int) -> list[tuple[float, float, float, float]]:
    """``count`` boxes of different sizes on a grid over a width x height frame."""
    side = max(1, math.ceil(math.sqrt(count)))
    cell_w, cell_h = width / side, height / side
    out = []
    for i in range(count):
        row, col = divmod(i, side)
        scale = 0.5 + 0.5 * ((i * 7) % 5) / 4  # 0.5 .. 1.0 of the cell
        out.append(((col + 0.5) * cell_w, (row + 0.5) * cell_h, cell_w * scale,
                    cell_h * scale))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camera", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--boxes", type=int, default=1)
    args = parser.parse_args(argv)

    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import (Detection2D, Detection2DArray, ObjectHypothesis,
                                 ObjectHypothesisWithPose)

    rclpy.init()
    node = rclpy.create_node("fake_detector")
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # never drops a frame
    pub = node.create_publisher(Detection2DArray, args.output, qos)

    def detect(frame: Image) -> None:
        msg = Detection2DArray(header=frame.header)
        for i, (cx, cy, w, h) in enumerate(grid_boxes(frame.width, frame.height, args.boxes)):
            d = Detection2D(header=frame.header, id=f"obj{i}")
            d.bbox.center.position.x, d.bbox.center.position.y = cx, cy
            d.bbox.size_x, d.bbox.size_y = w, h
            d.results = [ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id=str(i)))]
            msg.detections.append(d)
        pub.publish(msg)

    node.create_subscription(Image, args.camera, detect, qos)
    print("fake_detector ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
