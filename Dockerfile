# SGD Atlas in a container. Build and run (README, "Docker"):
#   docker build -t sgd-atlas .
#   docker run -p 5006:5006 -e SGD_ATLAS_ORIGINS=localhost:5006 sgd-atlas
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    NUMBA_CACHE_DIR=/home/atlas/.numba-cache \
    SGD_ATLAS_CACHE_DIR=/home/atlas/cache \
    SGD_ATLAS_ORIGINS=localhost:5006

RUN useradd --create-home --uid 1000 atlas
WORKDIR /home/atlas/sgd-atlas
COPY --chown=1000:1000 pyproject.toml README.md ./
COPY --chown=1000:1000 engine engine
COPY --chown=1000:1000 app app
COPY --chown=1000:1000 assets assets
# the dependencies come from pyproject.toml; editable, so assets/ stays beside the code
RUN pip install --no-cache-dir -e .

USER 1000
# compile the numba kernels into the cache at build time, so the first visitor does not wait
RUN python -m engine.warmup

EXPOSE 5006
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5006/liveness', timeout=4)"]
# websocket origins come from $SGD_ATLAS_ORIGINS (comma-separated host:port list)
CMD ["sgd-atlas", "serve", "--address", "0.0.0.0", "--port", "5006"]
