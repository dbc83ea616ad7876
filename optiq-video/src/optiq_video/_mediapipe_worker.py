"""MediaPipe Pose over raw frames: run by optiq_video.estimator with the estimator environment's Python.

Standalone on purpose (stdlib, numpy and mediapipe only; optiq is not installed there).
stdin: a line "WIDTH HEIGHT", then RGB24 frames of that size, one after another, until end of file (the size
comes on stdin, not argv, so that the process can start importing MediaPipe before the video is probed).
stdout: per frame 33 x 3 float32 (native byte order): x, y normalised to the image width and height, and the
landmark's visibility; NaN for every landmark of a frame where no person was found.
"""

import sys

import numpy as np

REQUIRED = "0.10.14"


def main() -> int:
    import mediapipe
    from mediapipe.python.solutions import pose

    if mediapipe.__version__ != REQUIRED:
        sys.stderr.write(f"optiq-video: mediapipe {mediapipe.__version__} found, {REQUIRED} expected\n")
        return 3
    header = sys.stdin.buffer.readline().split()
    if len(header) != 2:
        return 0  # nothing to estimate: the caller stopped before sending frames
    width, height = int(header[0]), int(header[1])
    size = width * height * 3
    missing = np.full((33, 3), np.nan, dtype=np.float32).tobytes()
    out = sys.stdout.buffer
    # model_complexity=1: the only setting whose weights ship in the wheel (0 and 2 download at run time).
    # Video mode (static_image_mode=False): the person found is tracked from frame to frame, as in a recording.
    with pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True) as estimator:
        while True:
            data = sys.stdin.buffer.read(size)
            if len(data) < size:
                break
            frame = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
            found = estimator.process(frame).pose_landmarks
            if found is None:
                out.write(missing)
            else:
                marks = np.array([(m.x, m.y, m.visibility) for m in found.landmark], dtype=np.float32)
                out.write(marks.tobytes())
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
