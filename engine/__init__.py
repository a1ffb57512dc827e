"""SGD Atlas simulation engine: numba kernels behind thin functions that return xarray Datasets.

The engine never imports param, panel, holoviews or bokeh (see ``../shared/STYLE.md``).
"""

__version__ = "0.1.0"
