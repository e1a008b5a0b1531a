# syntax=docker/dockerfile:1
# The monitor agent image (`monitor-agent run`): slim, non-root, health-checked.
#
#   docker build -t truebit-monitor-agent .
#   ENABLE_FEDERATION=true docker compose -f configs/docker-compose.monitor.yml up -d
#
# Only the agent package and its own runtime dependencies go in: the seed toolkit (ansible,
# bcrypt, nats-server) stays on the operator's machine.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor_agent ./monitor_agent
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# sqlite3: the seed documentation's diagnostic commands run it inside the container.
RUN apt-get update \
 && apt-get install -y --no-install-recommends sqlite3 \
 && rm -rf /var/lib/apt/lists/*

# agent runtime dependencies (same specifiers as pyproject.toml; checked by tests/containers)
RUN pip install \
    "nats-py>=2.9" \
    "msgspec>=0.18" \
    "cryptography>=42" \
    "flask>=3.0" \
    "flask-sock>=0.7" \
    "gunicorn>=22,<28" \
    "prometheus-client>=0.20" \
    "click>=8.1" \
    "httpx>=0.27" \
    "psutil>=5.9" \
    "nkeys>=0.2" "pynacl>=1.5"

COPY --from=build /wheels /wheels
RUN pip install --no-deps /wheels/*.whl && rm -rf /wheels

# A fixed numeric uid/gid so volume ownership and `runAsNonRoot` checks are predictable.
RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid monitor --home-dir /app --shell /usr/sbin/nologin monitor \
 && mkdir -p /app/data \
 && chown -R monitor:monitor /app

WORKDIR /app
# Inside a container the API must listen on all interfaces; the compose file publishes it on
# the host's loopback only. The database is $DATA_DIR/truebit-monitor.db.
ENV DATA_DIR=/app/data \
    MONITOR_HOST=0.0.0.0
VOLUME ["/app/data"]
EXPOSE 8090
USER 10001:10001

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('MONITOR_PORT', '8090'), timeout=4).status == 200 else 1)"]

ENTRYPOINT ["monitor-agent"]
CMD ["run"]
