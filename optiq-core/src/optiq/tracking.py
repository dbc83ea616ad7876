"""Experiment tracking with MLflow (extra ``optiq[infra]``), shared by ``optiq train model`` and ``optiq train rl``.

Every run goes to an experiment named after the package that trains (``optiq-models``, ``optiq-rl``); the default
store is a SQLite file ``mlflow.db`` beside the output, with its artifacts in ``mlartifacts/`` there, so that a run
can be read back with MLflow's own client and no server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import ConfigError


def start_mlflow_run(experiment: str, out: str | Path, run_name: str, uri: str | None = None) -> Any:
    """Start an MLflow run of ``experiment`` for the output ``out`` and return the ``mlflow`` module (its
    ``log_params``, ``log_metrics``, ``end_run`` then act on that run). uri: the tracking store (default
    ``sqlite:///<out's folder>/mlflow.db``). MLflow missing: ConfigError naming the extra to install."""
    try:
        import mlflow
    except ImportError:
        raise ConfigError('track: mlflow is not installed; pip install "optiq[infra]"') from None
    folder = Path(out).resolve().parent
    mlflow.set_tracking_uri(uri or f"sqlite:///{folder / 'mlflow.db'}")
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=(folder / "mlartifacts").as_uri())
    mlflow.set_experiment(experiment)
    mlflow.start_run(run_name=run_name)
    return mlflow
