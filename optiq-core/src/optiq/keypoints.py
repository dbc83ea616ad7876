"""2D keypoint layouts: the point order, names and edges of OpenPose BODY_25, BODY_25B, COCO-18 and COCO-17.

Names follow COCO's style (``left_shoulder``) in every layout, so that the same body point has the same name
whichever detector produced it (BODY_25B's first 17 points are COCO-17's, in COCO's order).

Sources of the orders:
- COCO-17: the COCO keypoint task (cocodataset.org/#format-data, "keypoints" and "skeleton" of the person
  category in the person_keypoints annotation files).
- OpenPose BODY_25 and COCO-18: OpenPose's doc/02_output.md ("Pose Output Format") and
  include/openpose/pose/poseParametersRender.hpp (POSE_BODY_25_BODY_PARTS, POSE_COCO_BODY_PARTS and their render
  pairs).
- OpenPose BODY_25B: the experimental models (openpose_train, experimental_models/README.md) and
  src/openpose/pose/poseParameters.cpp (POSE_BODY_25B_BODY_PARTS): COCO-17, then UpperNeck, HeadTop and six foot
  points; the shared Pose2Sim demo data (Pose2Sim/skeletons.py, BODY_25B) uses this order.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import OptiqError

COCO17_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                "right_knee", "left_ankle", "right_ankle")
# COCO's "skeleton" of the person category, converted from 1-based to 0-based indices.
COCO17_EDGES = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
                (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))

BODY25_NAMES = ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
                "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
                "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe",
                "left_heel", "right_big_toe", "right_small_toe", "right_heel")
BODY25_EDGES = ((1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12), (12, 13),
                (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20), (14, 21), (11, 22),
                (22, 23), (11, 24))

BODY25B_NAMES = (*COCO17_NAMES, "upper_neck", "head_top", "left_big_toe", "left_small_toe", "left_heel",
                 "right_big_toe", "right_small_toe", "right_heel")
BODY25B_EDGES = (*COCO17_EDGES, (5, 17), (6, 17), (17, 18), (15, 19), (19, 20), (15, 21), (16, 22), (22, 23),
                 (16, 24))

COCO18_NAMES = ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
                "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
                "right_eye", "left_eye", "right_ear", "left_ear")
COCO18_EDGES = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
                (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))


@dataclass(frozen=True)
class Layout:
    """A keypoint layout: ``name`` (``"body25b"``), K point ``names`` in the detector's order, ``edges`` as
    ``[E, 2]`` index pairs to draw."""

    name: str
    names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]

    @property
    def num_points(self) -> int:
        return len(self.names)


LAYOUTS = {layout.name: layout for layout in (
    Layout("body25", BODY25_NAMES, BODY25_EDGES),
    Layout("body25b", BODY25B_NAMES, BODY25B_EDGES),
    Layout("coco18", COCO18_NAMES, COCO18_EDGES),
    Layout("coco17", COCO17_NAMES, COCO17_EDGES),
)}


def get_layout(name: str) -> Layout:
    """The layout called ``name`` (body25, body25b, coco18, coco17); OptiqError listing them otherwise."""
    key = str(name).lower().replace("_", "").replace("-", "")
    if key not in LAYOUTS:
        raise OptiqError(f"unknown keypoint layout {name!r}; known: {', '.join(LAYOUTS)}")
    return LAYOUTS[key]


def layouts_with(num_points: int) -> list[Layout]:
    """The layouts of ``num_points`` points (25: BODY_25 and BODY_25B)."""
    return [lay for lay in LAYOUTS.values() if lay.num_points == num_points]
