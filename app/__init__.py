"""SGD Atlas dashboard: param state (``app.state``) → Panel pages (``app.pages``) → ``main.py``.

``panel serve app`` serves it; the app package never calls numba kernels directly, only the
public functions of :mod:`engine`, through :mod:`app.cache`.
"""
