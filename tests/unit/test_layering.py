from __future__ import annotations

import subprocess
import sys

import nbflow


def test_core_imports_no_notebook_server_or_client_libraries() -> None:
    code = (
        "import sys, nbflow.core.runner, nbflow.core.flows, nbflow.core.schedules, nbflow.core.executors;"
        "import nbflow.core.cache, nbflow.core.context, nbflow.core.events;"
        "bad = [m for m in ('IPython', 'sqlalchemy', 'httpx', 'starlette', 'strawberry', 'anywidget', 'distributed')"
        " if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_importing_nbflow_stays_light() -> None:
    code = "import sys, nbflow; print(','.join(m for m in ('IPython','sqlalchemy','httpx','distributed') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_is_exported_and_sorted() -> None:
    import types

    assert nbflow.__all__ == sorted(nbflow.__all__)
    for name in nbflow.__all__:
        assert hasattr(nbflow, name), name
    public = {
        n
        for n in dir(nbflow)
        if not n.startswith("_") and not isinstance(getattr(nbflow, n), types.ModuleType)
    }
    hooks = {"load_ipython_extension", "unload_ipython_extension", "annotations", "Any"}
    assert public - hooks <= set(nbflow.__all__)
