# The warroom image: `warroom worker` (default), `warroom migrate`, `warroom simulate`, ...
# Build: docker build -t warroom .   (docker-compose.yml builds it for the workers)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 warroom \
    && mkdir -p /var/lib/warroom \
    && chown warroom:warroom /var/lib/warroom

WORKDIR /app
COPY pyproject.toml ./
COPY warroom/ warroom/
COPY streams/ streams/
COPY producers/ producers/
COPY sinks/ sinks/
COPY dashboards/ dashboards/
COPY alerts/ alerts/
# pyproject names README.md as the long description: the image needs the file, not its text
RUN touch README.md && pip install . && rm -rf /root/.cache

USER warroom
ENV WARROOM_MODE=production \
    WARROOM_DATA_DIR=/var/lib/warroom \
    WARROOM_WEB_HOST=127.0.0.1 \
    WARROOM_WEB_PORT=6066 \
    WARROOM_LOG_FORMAT=json
# loopback unless told otherwise: beyond it, production mode wants WARROOM_WEB_PASSWORD
# (docker-compose.yml binds the workers' 6066 on their network, for Prometheus, and publishes
# it nowhere)
EXPOSE 6066

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/healthz', timeout=4)"]

CMD ["warroom", "worker"]
