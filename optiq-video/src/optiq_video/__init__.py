"""optiq video in: a plain video of a person -> COCO-17 2D keypoints (``optiq.Points`` in pixels).

``optiq data convert --in run.mp4 --out kp.parquet`` reads a video through the loader this package registers;
in Python: ``optiq.load_points("run.mp4")`` or ``optiq_video.extract.load_video``. The pose estimator
(MediaPipe Pose 0.10.14) runs in an environment of its own: see ``optiq_video.estimator``.
"""
