# The salewatch worker image (used by docker-compose.yml).
#
# The base image is pinned by digest, given at build time: no container registry was
# reachable where this file is maintained, so no digest could be read and checked here.
# Read the one of the tag you trust and pass it (compose takes it from SALEWATCH_PYTHON_IMAGE):
#   docker buildx imagetools inspect python:3.11-slim-bookworm   # "Digest: sha256:..."
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> -t salewatch .
# Without it the build stops at the first line.
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies in their own layer, rebuilt only when the lock file changes: every package
# pinned with its hashes (make lock), nothing resolved at build time.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

# The project runs from its source (python -m streams): nothing to build or fetch.
COPY . .
ENV PYTHONPATH=/app
RUN useradd --system --uid 10001 --home-dir /var/lib/salewatch --create-home salewatch

USER salewatch
# In a container the web server must listen beyond loopback for Prometheus to scrape it,
# and then the worker insists on credentials for /metrics and /api/* (SALEWATCH_WEB_AUTH_*).
ENV SALEWATCH_WEB_HOST=0.0.0.0 \
    SALEWATCH_WEB_PORT=6066 \
    SALEWATCH_DATA_DIR=/var/lib/salewatch/data
EXPOSE 6066

CMD ["python", "-m", "streams", "worker", "-l", "info"]
