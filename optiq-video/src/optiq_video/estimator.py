"""The pose estimator, MediaPipe Pose 0.10.14, run in an environment of its own, ffmpeg piping frames into it.

Why its own environment: 0.10.14 is the last MediaPipe whose pose weights (``model_complexity=1``) ship inside
the wheel (later ones, and rtmlib and its kind, download weights at run time, which fails offline), and it pins
``protobuf<5``, which onnx>=1.23 (optiq-models[onnx]) and tensorboard cannot share one environment with. So
optiq's environment keeps its protobuf and the estimator gets a small one beside it (mediapipe, numpy, OpenCV,
jax), created by ``python -m optiq_video.env``.

Which Python runs it, first found: the ``python`` argument, ``$OPTIQ_VIDEO_PYTHON``, this interpreter when it
can import mediapipe, then the environment ``python -m optiq_video.env`` makes: ``optiq-video/`` inside this one.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from optiq.errors import OptiqError

#: The one estimator optiq's accuracy bound was measured with (docs/video.md).
MEDIAPIPE_REQUIREMENT = "mediapipe==0.10.14"
#: MediaPipe Pose's landmarks per frame, and the numbers the worker writes for each: x, y (normalised), visibility.
LANDMARKS = 33
FIELDS = 3
WORKER = Path(__file__).with_name("_mediapipe_worker.py")


def default_env() -> Path:
    """Where ``python -m optiq_video.env`` puts the estimator environment: ``optiq-video/`` inside the active
    environment (so it is removed with it, and ignored by version control as the environment is)."""
    return Path(sys.prefix) / "optiq-video"


def env_python(env: Path) -> Path:
    """The interpreter of the virtual environment ``env``."""
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def estimator_python(python: str | os.PathLike | None = None) -> Path:
    """The Python that runs the estimator (see the module docstring); OptiqError saying how to get one if none."""
    named = f"python={python}"
    if python is None:
        python = os.environ.get("OPTIQ_VIDEO_PYTHON") or None
        named = f"OPTIQ_VIDEO_PYTHON={python}"
    if python is not None:
        if not Path(python).is_file():
            raise OptiqError(f"{named}: no such Python; the pose estimator's environment is created by "
                             "`python -m optiq_video.env`")
        return Path(python)
    if importlib.util.find_spec("mediapipe") is not None:
        return Path(sys.executable)
    nested = env_python(default_env())
    if nested.is_file():
        return nested
    raise OptiqError(f"video input needs the pose estimator ({MEDIAPIPE_REQUIREMENT}, Python <= 3.12) in its own "
                     f"environment: run `python -m optiq_video.env` (creates {default_env()}), or set "
                     "OPTIQ_VIDEO_PYTHON to a Python that has it")


class Estimator:
    """The estimator's process, started at construction so that MediaPipe's import (a second or two) overlaps
    whatever the caller does next (probing the video); ``run`` then has ffmpeg decode the video straight into it.
    Use as a context manager: leaving it stops the processes if ``run`` did not finish. source names the video in
    errors. python: see ``estimator_python``."""

    def __init__(self, python: str | os.PathLike | None = None, source: str | os.PathLike | None = None):
        self.exe = estimator_python(python)
        self.source = source
        # stderr to files, not pipes: MediaPipe's and ffmpeg's log lines could fill a pipe nobody reads.
        self.log = tempfile.TemporaryFile()
        self.decoder_log = tempfile.TemporaryFile()
        self.decoder: subprocess.Popen | None = None
        # The worker's stdin is a pipe of our own: the frame size goes in first, then ffmpeg writes the frames
        # into it directly, so this process never copies a frame (6 MB each at 1080x1920).
        read, self.feed = os.pipe()
        try:
            self.proc = subprocess.Popen([str(self.exe), str(WORKER)], stdin=read, stdout=subprocess.PIPE,
                                         stderr=self.log)
        except OSError as exc:
            os.close(self.feed)
            self.log.close()
            self.decoder_log.close()
            raise OptiqError(f"the pose estimator's Python {self.exe} cannot run: {exc.strerror}", source) from None
        finally:
            os.close(read)

    def __enter__(self) -> Estimator:
        return self

    def __exit__(self, *exc) -> None:
        for proc in (self.decoder, self.proc):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if self.feed is not None:
            os.close(self.feed)
        self.proc.stdout.close()
        self.log.close()
        self.decoder_log.close()

    def run(self, decode: Sequence[str], width: int, height: int) -> np.ndarray:
        """MediaPipe Pose on each frame the command ``decode`` writes to its stdout (RGB24, ``width * height * 3``
        bytes each, in order), which runs alongside the estimator (decoding overlaps estimation).

        Returns ``[T, 33, 3]`` float32: x, y normalised to the image width and height (x right, y down; outside
        [0, 1] when MediaPipe places a landmark outside the picture) and visibility in [0, 1]; NaN rows where no
        person was found.
        """
        try:
            os.write(self.feed, f"{width} {height}\n".encode())
        except BrokenPipeError:
            pass  # the worker stopped already: its exit status and log say why
        self.decoder = subprocess.Popen(list(decode), stdin=subprocess.DEVNULL, stdout=self.feed,
                                        stderr=self.decoder_log)
        os.close(self.feed)
        self.feed = None
        size = LANDMARKS * FIELDS * 4
        chunks = []
        while len(chunk := self.proc.stdout.read(size)) == size:
            chunks.append(chunk)
        code = self.proc.wait()
        if code != 0:
            raise OptiqError(f"the pose estimator ({self.exe}) stopped after {len(chunks)} frames: "
                             f"{_last_line(self.log, code)}", self.source)
        code = self.decoder.wait()
        if code != 0:
            raise OptiqError(f"ffmpeg stopped decoding after {len(chunks)} frames: "
                             f"{_last_line(self.decoder_log, code)}", self.source)
        return np.frombuffer(b"".join(chunks), dtype=np.float32).reshape(len(chunks), LANDMARKS, FIELDS).copy()


def _last_line(log, code: int) -> str:
    """The last non-empty line a process wrote to the temporary file ``log``, or its exit status."""
    log.seek(0)
    lines = [ln for ln in log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else f"exit status {code}"
