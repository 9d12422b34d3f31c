# The salewatch worker image (used by docker-compose.yml; build: docker build -t salewatch .).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies in their own layer: rebuilt only when pyproject.toml changes, not on every
# code edit. tomllib is stdlib from Python 3.11.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /var/lib/salewatch --create-home salewatch

USER salewatch
# In a container the web server must listen beyond loopback for Prometheus to scrape it.
ENV SALEWATCH_WEB_HOST=0.0.0.0 \
    SALEWATCH_WEB_PORT=6066 \
    SALEWATCH_DATA_DIR=/var/lib/salewatch/data
EXPOSE 6066

CMD ["python", "-m", "streams", "worker", "-l", "info"]
