"""Cheap fingerprints of a task's inputs, to notice an input changed in place.

``fingerprint(value)`` is an ``int``, equal before and after a task unless the
task changed the value (within one process: it is built from ``hash`` and
CRC-32, not meant to be stored). What it looks at, and what it costs:

* numpy arrays: dtype, shape, strides, and the bytes: all of them up to
  ``FULL_BYTES`` (CRC-32, ~4 GB/s), else ``SAMPLE_CHUNKS`` chunks of
  ``CHUNK_BYTES`` spread evenly over the buffer plus its last chunk (~16 MB
  read, a few ms, whatever the size). Object arrays: the identity of their
  elements (up to ``MAX_ITEMS``, evenly sampled beyond).
* pandas frames and series: shape, columns, dtypes, index, and every column:
  numeric ones as arrays (above; a frame's columns share one array's budget), others (strings, objects, categoricals)
  through pandas' own value hashing (~1 us a row: whole up to ``FULL_ROWS``
  rows, evenly sampled beyond).
* lists, tuples, dicts, sets: length, and their items (up to ``MAX_ITEMS``,
  evenly sampled beyond), recursively up to ``MAX_DEPTH`` levels.
* other objects: their attributes (``__dict__`` / ``__slots__``), recursively;
  a numpy random generator: its state.
* immutable scalars, strings, functions, classes, modules, and objects of
  libraries whose state changes when they are only read or drawn (matplotlib,
  IPython, I/O) are left out.

So a change to a large array that touches none of the sampled chunks (one
element in a 1 GB array) can go unseen; a change to its shape, to many
elements, to a pandas column, or to a list's length or items is seen.
"""

from __future__ import annotations

import types
import zlib
from typing import Any

FULL_BYTES = 64 * 2**20
CHUNK_BYTES = 64 * 2**10
SAMPLE_CHUNKS = 256
MAX_ITEMS = 10_000
MAX_DEPTH = 4

_ATOMS = (type(None), bool, int, float, complex, str, bytes, range, type(Ellipsis))
_SKIPPED_MODULES = ("matplotlib", "IPython", "ipykernel", "ipywidgets", "_io", "io", "threading", "socket")
_SKIP = 0  # what a left-out value contributes
_CODE = (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType)
FULL_ROWS = 20_000  # pandas columns of objects/strings hashed whole up to this length (~1 us a row)


def fingerprint(value: Any) -> int | None:
    """A fingerprint of ``value``'s contents (see the module docstring for what it sees);
    None when the value cannot be read without failing (the guard then leaves it out)."""
    try:
        return _fingerprint(value, MAX_DEPTH, {})
    except Exception:  # a fingerprint must never fail the task it watches
        return None


def is_watched(value: Any) -> bool:
    """False for values that cannot change in place (or that the guard leaves out)."""
    return not isinstance(value, _ATOMS) and not _left_out(value)


def _left_out(value: Any) -> bool:
    if isinstance(value, _CODE):
        return True
    return (type(value).__module__ or "").startswith(_SKIPPED_MODULES)


def _sample(count: int) -> range | list[int]:
    if count <= MAX_ITEMS:
        return range(count)
    step = count / MAX_ITEMS
    return [int(i * step) for i in range(MAX_ITEMS)] + [count - 1]


def _fingerprint(value: Any, depth: int, seen: dict[int, Any]) -> int:
    if isinstance(value, _ATOMS):
        return hash(value)
    if depth <= 0 or id(value) in seen or _left_out(value):
        return _SKIP
    # Keyed by id, holding the object: a temporary freed mid-walk must not lend its id to another.
    seen[id(value)] = value
    kind = type(value)
    module = kind.__module__ or ""
    if module.startswith("numpy"):
        return _numpy(value, depth, seen)
    if module.startswith("pandas"):
        return _pandas(value, depth, seen)
    if isinstance(value, list | tuple):
        return hash(
            (kind, len(value), *(_fingerprint(value[i], depth - 1, seen) for i in _sample(len(value))))
        )
    if isinstance(value, dict):
        keys = list(value)
        picked = [keys[i] for i in _sample(len(keys))]
        return hash((kind, len(keys), *((hash(k), _fingerprint(value[k], depth - 1, seen)) for k in picked)))
    if isinstance(value, set | frozenset):
        return hash((kind, len(value), frozenset(value) if len(value) <= MAX_ITEMS else len(value)))
    return _attributes(value, depth, seen)


def _attributes(value: Any, depth: int, seen: dict[int, Any]) -> int:
    names: list[str] = []
    for klass in type(value).__mro__:
        names += [s for s in getattr(klass, "__slots__", ()) if isinstance(s, str)]
    state = dict(getattr(value, "__dict__", {}) or {})
    for name in names:
        if name not in ("__dict__", "__weakref__") and hasattr(value, name):
            state[name] = getattr(value, name)
    if not state:
        return hash(type(value))
    return hash((type(value), _fingerprint(state, depth, seen)))


def _array_bytes(array: Any, share: int = 1) -> int:
    """Checksum of an array's bytes; ``share`` > 1 when it is one of that many columns of a
    frame: the frame as a whole keeps to ``FULL_BYTES`` and ``SAMPLE_CHUNKS``."""
    import numpy as np

    if array.dtype.hasobject:
        flat = array.ravel(order="K")
        return hash(tuple(id(flat[i]) for i in _sample(flat.size)))
    full, chunks = FULL_BYTES // share, max(8, SAMPLE_CHUNKS // share)
    if array.flags.c_contiguous or array.flags.f_contiguous:
        flat = array.ravel(order="K")  # a view: no copy for either memory order
    elif array.nbytes <= full:
        flat = np.ascontiguousarray(array).ravel()  # a strided view: copied, it is small
    else:  # a large strided view: an even sample of its elements, never a full copy
        flat = np.ascontiguousarray(array.flat[np.linspace(0, array.size - 1, chunks * 1024).astype(np.intp)])
    # As bytes: works for every fixed-size dtype (datetimes and structured ones included).
    data = memoryview(flat.view(np.uint8)) if flat.size else memoryview(b"")  # type: ignore[arg-type]
    if data.nbytes <= full:
        return zlib.crc32(data)
    stride = data.nbytes // chunks
    checksum = 0
    for start in [*range(0, data.nbytes - CHUNK_BYTES, stride), data.nbytes - CHUNK_BYTES]:
        checksum = zlib.crc32(data[start : start + CHUNK_BYTES], checksum)
    return checksum


def _numpy(value: Any, depth: int, seen: dict[int, Any]) -> int:
    import numpy as np

    if isinstance(value, np.ndarray):
        return hash((value.dtype.str, value.shape, value.strides, _array_bytes(value)))
    if isinstance(value, np.generic):
        return hash(value.tobytes())
    if isinstance(value, np.random.Generator | np.random.RandomState):
        state = (
            value.bit_generator.state
            if isinstance(value, np.random.Generator)
            else value.get_state(legacy=False)
        )
        return _fingerprint(state, MAX_DEPTH, {})
    return _attributes(value, depth, seen)


def _pandas(value: Any, depth: int, seen: dict[int, Any]) -> int:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        share = max(1, value.shape[1])
        columns = [_column(value.iloc[:, i], share) for i in range(value.shape[1])]
        return hash(
            (value.shape, _index(value.columns), tuple(map(str, value.dtypes)), _index(value.index), *columns)
        )
    if isinstance(value, pd.Series):
        return hash((value.name, _index(value.index), _column(value)))
    if isinstance(value, pd.Index):
        return _index(value)
    return _attributes(value, depth, seen)


def _index(index: Any) -> int:
    import pandas as pd

    if isinstance(index, pd.RangeIndex):
        return hash((index.start, index.stop, index.step, index.name))
    return hash((str(index.dtype), tuple(index.names), _column(index)))


def _column(values: Any, share: int = 1) -> int:
    import numpy as np
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, np.dtype) and not dtype.hasobject:
        return hash((str(dtype), _array_bytes(values.to_numpy(copy=False), share)))
    # Strings, objects, categoricals, nullable types: pandas hashes the values themselves
    # (their Python objects may be made afresh on every read).
    series = pd.Series(values, copy=False) if isinstance(values, pd.Index) else values
    if len(series) > FULL_ROWS:
        series = series.iloc[list(_sample(len(series)))]
    try:
        hashed = pd.util.hash_pandas_object(series, index=False).to_numpy()
    except TypeError:  # unhashable cells (lists in a column): their identities
        return hash((str(dtype), tuple(id(v) for v in series.to_numpy())))
    checksum = zlib.crc32(memoryview(np.ascontiguousarray(hashed)).cast("B"))  # type: ignore[arg-type]
    return hash((str(dtype), checksum))
