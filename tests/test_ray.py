"""The Ray executor on a local Ray instance: the same sweep as in process, on the real SmolLM2,
with samples streamed back to the one store as each finishes."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from conftest import SMOL
from slmscope.runs import RunSpec, sweep
from slmscope.runs.events import SampleDone
from slmscope.runs.store import Store

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None and os.environ.get("CI") != "true",
    reason="Ray is not installed: pip install 'slmscope[ray]'",
)


@pytest.mark.model
def test_ray_local_runs_the_same_samples_as_in_process(tmp_path: Path, smol_path: Path) -> None:
    spec = RunSpec(
        models=(SMOL,), paradigms=("base",), tasks=("builtin:sentiment",), limit=3, n_threads=1
    )
    here = sweep(spec, tmp_path / "here").results()
    events: list[object] = []
    on_ray = sweep(spec, tmp_path / "ray", events.append, ray="local")
    assert on_ray.done == 3
    assert [e.done for e in events if isinstance(e, SampleDone)] == [1, 2, 3]  # streamed
    columns = ["cell_key", "outcome", "final_answer", "completion_tokens"]
    assert (
        on_ray.results()[columns].sort_values("cell_key").values.tolist()
        == here[columns].sort_values("cell_key").values.tolist()
    )  # temperature 0: the same answers from the Ray worker as from this process
    store = Store.open(tmp_path / "ray")
    (run,) = store.runs()
    store.close()
    record = json.loads(run["models"])[SMOL]
    assert record["backend_kind"] == "llamacpp" and record["sha256"]
    assert run["status"] == "complete"
