# SGD Atlas: `docker build -t sgd-atlas .` then
# `docker run -p 5006:5006 -e SGD_ATLAS_ORIGINS=localhost:5006 sgd-atlas`
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    NUMBA_CACHE_DIR=/home/atlas/.numba-cache \
    SGD_ATLAS_ORIGINS=localhost:5006

RUN useradd --create-home --uid 1000 atlas
WORKDIR /home/atlas/sgd-atlas
COPY --chown=atlas:atlas pyproject.toml README.md ./
COPY --chown=atlas:atlas engine engine
COPY --chown=atlas:atlas app app
COPY --chown=atlas:atlas assets assets
RUN pip install --no-cache-dir -e .

USER atlas
# compile the numba kernels into the cache at build time, so the first visitor does not wait
RUN python -m engine.warmup

EXPOSE 5006
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5006/liveness', timeout=4)"
CMD ["sh", "-c", "exec panel serve app --address 0.0.0.0 --port 5006 --allow-websocket-origin \"$SGD_ATLAS_ORIGINS\" --liveness --warm"]
