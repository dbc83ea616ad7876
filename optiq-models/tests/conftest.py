"""Fixtures every optiq-models test file shares: one torch thread, and a small real dataset of walks and runs."""

from __future__ import annotations

import pytest
import torch

STYLES = ("active", "angry", "childish", "happy", "old", "proud")


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    # Test processes share two cores: with a thread per core, threads wait on each other when another process runs
    # (measured: 300 MLP steps took 130 s against 6 s with one thread).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def walk_run(data_dir, tmp_path_factory):
    """6 walks and 6 runs of the Bandai-Namco corpus (30 fps, 22 joints) as a Parquet dataset, converted without
    labels (content and style come from the take names)."""
    from optiq.convert import convert

    bandai = data_dir / "corpora" / "bandai_namco" / "data"
    files = [bandai / f"dataset-1_{c}_{s}_001.bvh" for c in ("walk", "run") for s in STYLES]
    out = tmp_path_factory.mktemp("data") / "walk_run.parquet"
    convert(files, out, jobs=1)
    return out
