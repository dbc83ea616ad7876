"""MediaPipe Pose's 33 landmarks and the 17 of them that are COCO-17's points.

Source of the order: MediaPipe's ``PoseLandmark`` enum (mediapipe/python/solutions/pose.py in the 0.10.14
wheel) and its pose landmark model card (developers.google.com/mediapipe/solutions/vision/pose_landmarker,
"Pose landmarker model": 0 nose ... 32 right_foot_index). "Left" is the person's left in both MediaPipe and COCO.
"""

from __future__ import annotations

import numpy as np
from optiq.keypoints import COCO17_NAMES

MEDIAPIPE_POSE_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index")

#: ``[17]`` index into MediaPipe's 33 landmarks of each COCO-17 point, in COCO's order: the same body point under
#: the same name (COCO's eye is MediaPipe's eye centre, not its inner or outer corner).
COCO17_FROM_MEDIAPIPE = np.array([MEDIAPIPE_POSE_NAMES.index(n) for n in COCO17_NAMES], dtype=np.int64)
