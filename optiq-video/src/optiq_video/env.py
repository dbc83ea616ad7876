"""``python -m optiq_video.env [DIR]``: create the pose estimator's environment (default: ``optiq-video/``
inside the active environment, where optiq_video.estimator looks for it) and install MediaPipe into it.

MediaPipe 0.10.14 exists for Python 3.9-3.12 only, so the new environment uses this Python, which must be one of
those. `make setup` runs this; run it again to repair a broken environment (pip leaves a good one as it is).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .estimator import MEDIAPIPE_REQUIREMENT, default_env, env_python


def create(env: Path) -> Path:
    """Create (or update) the virtual environment ``env`` with MediaPipe; returns its Python."""
    if sys.version_info >= (3, 13):
        raise SystemExit(f"optiq-video: {MEDIAPIPE_REQUIREMENT} needs Python <= 3.12; this is "
                         f"{sys.version.split()[0]}: run this module with an older Python")
    python = env_python(env)
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    MEDIAPIPE_REQUIREMENT], check=True)
    return python


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    env = Path(args[0]) if args else default_env()
    python = create(env)
    print(f"optiq-video: pose estimator environment ready: {python}"
          + ("" if env == default_env() else f" (set OPTIQ_VIDEO_PYTHON={python})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
