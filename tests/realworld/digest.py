"""Stable digests of a namespace's values, comparable across processes and runs.

``namespace_digests(ns)`` maps each top-level name to a digest string of its
value; values with no stable content (functions, classes, modules, figures,
generators, timing results) are left out. Numbers and strings compare
exactly; arrays and frames by their bytes / pandas' value hashes; estimators
and plain objects by their attributes. Run inside kernels too: this file
imports nothing from nbflow or the tests.
"""

from __future__ import annotations

import hashlib
import json
import types
from typing import Any

_SKIP_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "display"}
_SKIP_TYPES = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, type,
               types.GeneratorType, types.CoroutineType)  # fmt: skip
_ATOMS = (type(None), bool, int, float, complex, str, bytes)
MAX_DEPTH = 4


def _sha(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else repr(part).encode())
    return h.hexdigest()[:16]


def digest(value: Any, depth: int = MAX_DEPTH) -> str | None:
    """A digest of ``value``'s contents, or None when it has none that is stable."""
    if isinstance(value, _ATOMS):
        return repr(value)
    if depth <= 0 or isinstance(value, _SKIP_TYPES):
        return None
    module = type(value).__module__ or ""
    if module.startswith(("matplotlib", "IPython", "seaborn.axisgrid", "_io", "io")):
        return None
    if module.startswith("numpy"):
        return _numpy(value)
    if module.startswith("pandas"):
        return _pandas(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        parts = [digest(v, depth - 1) for v in items]
        return None if None in parts else _sha(type(value).__name__, parts)
    if isinstance(value, dict):
        parts = [(digest(k, depth - 1), digest(v, depth - 1)) for k, v in value.items()]
        return None if any(None in p for p in parts) else _sha(type(value).__name__, parts)
    if hasattr(value, "get_params") and hasattr(value, "fit"):  # a scikit-learn estimator
        fitted = {k: v for k, v in vars(value).items() if k.endswith("_") and not k.startswith("_")}
        params = {k: v for k, v in value.get_params(deep=False).items()}
        return _sha(type(value).__name__, digest(params, depth - 1), digest(fitted, depth - 1))
    state = getattr(value, "__dict__", None)
    if isinstance(state, dict) and state:
        inner = digest(state, depth - 1)
        return None if inner is None else _sha(type(value).__name__, inner)
    return None


def _numpy(value: Any) -> str | None:
    import numpy as np

    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            inner = digest(value.tolist())
            return None if inner is None else _sha("object-array", value.shape, inner)
        return _sha(value.dtype.str, value.shape, np.ascontiguousarray(value).tobytes())
    if isinstance(value, np.generic):
        return repr(value.item())
    if isinstance(value, np.random.Generator):
        return _sha("generator", json.dumps(value.bit_generator.state, sort_keys=True, default=str))
    return None


def _pandas(value: Any) -> str | None:
    import pandas as pd

    if isinstance(value, pd.DataFrame | pd.Series | pd.Index):
        try:
            hashed = (
                pd.util.hash_pandas_object(value, index=not isinstance(value, pd.Index)).to_numpy().tobytes()
            )
        except TypeError:
            hashed = repr(value.to_dict() if not isinstance(value, pd.Index) else list(value)).encode()
        columns = list(value.columns) if isinstance(value, pd.DataFrame) else getattr(value, "name", None)
        dtypes = list(map(str, value.dtypes)) if isinstance(value, pd.DataFrame) else str(value.dtype)
        return _sha(type(value).__name__, repr(columns), repr(dtypes), hashed)
    if isinstance(value, pd.Timestamp | pd.Timedelta | pd.Period):
        return repr(value)
    return None


def namespace_digests(namespace: dict[str, Any]) -> dict[str, str]:
    """Digests of a notebook's top-level variables (private and IPython names left out)."""
    out = {}
    for name, value in namespace.items():
        if name.startswith("_") or name in _SKIP_NAMES:
            continue
        d = digest(value)
        if d is not None:
            out[name] = d
    return out
