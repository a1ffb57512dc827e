"""SGD Atlas simulation engine: numba kernels behind thin functions that return xarray Datasets.

The engine never imports param, panel, holoviews or bokeh (see ``../shared/STYLE.md``).
"""

import hashlib
from functools import lru_cache
from pathlib import Path

__version__ = "0.1.0"


@lru_cache(maxsize=1)
def _source_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def engine_version() -> str:
    """``__version__`` plus a digest of the engine's source files.

    Cached results are keyed on it, so any change to a kernel invalidates them — in memory and
    on disk — without anyone having to remember to bump ``__version__``.
    """
    return f"{__version__}+{_source_digest()}"
