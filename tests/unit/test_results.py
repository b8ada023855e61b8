"""Stored results (``nbflow.core.results``): every task run's result under a URL, read back by reference."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nbflow import Flow, Parameter, task, unmapped
from nbflow.core.errors import StorageError
from nbflow.core.results import is_ref, load, parse_ref

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mapping_helpers import scale, total  # noqa: E402


@task
def numbers(n: int) -> list[int]:
    return list(range(n))


def build() -> Flow:
    with Flow("stored") as flow:
        scaled = scale.map(numbers(Parameter("n", default=4)), factor=unmapped(10))
        total(scaled)
    return flow


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_every_task_runs_result_is_stored_and_read_back_by_its_reference(
    tmp_path: Path, executor: str
) -> None:
    state = build().run(results=str(tmp_path / "results"), executor=executor)
    by_slug = state.result.by_slug()
    assert {slug: load(s.result_ref) for slug, s in by_slug.items()} == {
        "n": 4,
        "numbers": [0, 1, 2, 3],
        "scale": [0, 10, 20, 30],  # a mapped task: its list, stored once
        "total": 60,
    }
    location, digest = parse_ref(by_slug["total"].result_ref)
    assert location.startswith(str(tmp_path / "results"))
    assert len(digest) == 64
    stored = sorted(p.name for p in (tmp_path / "results").rglob("*.pkl"))
    assert len(stored) == 4 and not any("scale[" in name for name in stored)


def test_without_a_store_nothing_is_written_and_refs_stay_empty(tmp_path: Path) -> None:
    state = build().run()
    assert all(s.result_ref is None for s in state.result.values())


def test_a_changed_stored_result_is_refused(tmp_path: Path) -> None:
    state = build().run(results=str(tmp_path))
    ref = state.result["total"].result_ref
    location, _ = parse_ref(ref)
    with open(location, "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(StorageError, match="does not match its recorded sha256"):
        load(ref)


def test_bad_references_are_clear_errors(tmp_path: Path) -> None:
    assert not is_ref("3f2a") and not is_ref(None)
    with pytest.raises(StorageError, match="is not a stored result's reference"):
        load("not a ref")
    with pytest.raises(StorageError, match="nothing stored at"):
        load(f"{tmp_path}/missing.pkl#sha256={'0' * 64}")


def test_a_result_that_cannot_be_stored_is_said_in_the_log_and_the_task_still_succeeds(
    tmp_path: Path,
) -> None:
    import threading

    from nbflow import EventStream

    @task
    def lock() -> object:
        return threading.Lock()

    stream = EventStream()
    events: list = []
    stream.subscribe(events.extend)
    state = Flow("locks", tasks=[lock]).run(results=str(tmp_path), stream=stream)
    assert state.result["lock"].is_successful() and state.result["lock"].result_ref is None
    warnings = [e.message for e in events if e.kind == "log" and e.level == "WARNING"]
    assert any(w.startswith("result not stored: the result cannot be pickled") for w in warnings)


def test_code_storage_on_an_fsspec_url_round_trips_and_refuses_changed_code() -> None:
    import fsspec

    from nbflow.storage.code import FsspecStorage, LocalStorage, load_code, storage_for

    assert isinstance(storage_for("memory://team"), FsspecStorage)
    assert isinstance(storage_for(None), LocalStorage) and isinstance(storage_for("/srv/flows"), LocalStorage)
    ref = storage_for("memory://team").put("etl", "def build_flow():\n    return None\n")
    assert ref["location"].startswith("memory://team/code/etl/") and ref["results"] == "memory://team/results"
    assert load_code(ref) == "def build_flow():\n    return None\n"
    with fsspec.open(ref["location"], "wb") as fh:
        fh.write(b"import os\n")
    with pytest.raises(StorageError, match="does not match its registration"):
        load_code(ref)
    with pytest.raises(StorageError, match="not a storage URL"):
        load_code({**ref, "location": "/etc/passwd"})
    with pytest.raises(StorageError, match="nothing stored at memory://team/gone.py"):
        load_code({**ref, "location": "memory://team/gone.py"})
