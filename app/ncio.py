"""netCDF for the engine's Datasets: the disk cache, page downloads and the command line.

netCDF attributes hold strings, numbers and 1-D numeric arrays only; the engine's attrs also
carry booleans, ``None``, dicts and nested lists (the canonical inputs of a run, the refined
end point of a training run, …). Those are written as JSON strings and their names listed in the
attribute ``_json_attrs``, so :func:`read_dataset` gives back exactly the attrs that were
written. Boolean variables are stored as ``int8`` with ``_bool = 1`` and restored as ``bool``.

Files are written with h5netcdf (netCDF-4/HDF5 format, readable by any netCDF tool); bytes for
a download are produced in memory, so a download never touches the disk.
"""

from __future__ import annotations

import io
import json
import numbers
import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import xarray as xr

ENGINE = "h5netcdf"
_JSON = "_json_attrs"
_BOOL = "_bool"


def _plain(value) -> bool:
    """True if netCDF can store ``value`` as an attribute and give it back unchanged."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (str, numbers.Number, np.number)):
        return True
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and value.dtype.kind in "iuf" and value.size > 0
    return False


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"cannot store an attribute of type {type(value).__name__}")


def _encode_attrs(attrs: Mapping) -> dict:
    out, encoded = {}, []
    for key, value in attrs.items():
        if _plain(value):
            out[key] = value
        else:
            out[key] = json.dumps(value, default=_jsonable, allow_nan=True)
            encoded.append(key)
    if encoded:
        out[_JSON] = json.dumps(encoded)
    return out


def _decode_attrs(attrs: Mapping) -> dict:
    attrs = dict(attrs)
    encoded = json.loads(attrs.pop(_JSON, "[]"))
    for key in encoded:
        attrs[key] = json.loads(attrs[key])
    return attrs


def encode(ds: xr.Dataset) -> xr.Dataset:
    """A copy of ``ds`` that netCDF can hold (see the module doc); the data is not copied."""
    out = ds.copy(deep=False)
    out.attrs = _encode_attrs(ds.attrs)
    for name, var in ds.variables.items():
        attrs = _encode_attrs(var.attrs)
        if var.dtype == bool:
            out[name] = var.astype(np.int8)
            attrs[_BOOL] = 1
        out[name].attrs = attrs
        out[name].encoding = {}
    return out


def decode(ds: xr.Dataset) -> xr.Dataset:
    """The inverse of :func:`encode`."""
    ds.attrs = _decode_attrs(ds.attrs)
    for name in list(ds.variables):
        var = ds[name]
        attrs = _decode_attrs(var.attrs)
        if attrs.pop(_BOOL, 0):
            ds[name] = var.astype(bool)
        ds[name].attrs = attrs
        ds[name].encoding = {}
    return ds


def _tree(obj: xr.Dataset | Mapping[str, xr.Dataset]) -> xr.DataTree:
    if isinstance(obj, xr.Dataset):
        return xr.DataTree(encode(obj))
    return xr.DataTree.from_dict({f"/{name.strip('/')}": encode(ds) for name, ds in obj.items()})


def to_bytes(obj: xr.Dataset | Mapping[str, xr.Dataset]) -> bytes:
    """A netCDF file in memory: one Dataset, or several as groups named by the mapping's keys."""
    return bytes(_tree(obj).to_netcdf(engine=ENGINE))


def write(obj: xr.Dataset | Mapping[str, xr.Dataset], path: str | os.PathLike) -> Path:
    """Write atomically: a temporary file beside ``path``, then a rename — a reader (another
    server process sharing the cache directory) never sees a half-written file."""
    path = Path(path)
    data = to_bytes(obj)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".nc")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_dataset(source: str | os.PathLike | bytes) -> xr.Dataset:
    """A Dataset written by :func:`write` (or :func:`to_bytes`), fully loaded into memory."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    return decode(xr.load_dataset(source, engine=ENGINE))


def read_groups(source: str | os.PathLike | bytes) -> dict[str, xr.Dataset]:
    """Every non-empty group of a file written from a mapping: ``{group path: Dataset}``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    with xr.open_datatree(source, engine=ENGINE) as tree:
        out = {}
        for node in tree.subtree:
            ds = node.to_dataset(inherit=False)
            if ds.variables or ds.attrs:
                out[node.path.strip("/")] = decode(ds.load())
        return out
