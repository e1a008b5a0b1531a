# syntax=docker/dockerfile:1
# The monitor agent image (`monitor-agent run`): slim, non-root, health-checked.
#
#   docker build -t truebit-monitor-agent .          # or: podman build --format docker ...
#   ENABLE_FEDERATION=true docker compose -f configs/docker-compose.monitor.yml up -d
#
# The base is plain Debian (bookworm-slim) with Debian's own python3 (3.11): nothing but Debian
# packages under the agent, and a base anyone can rebuild from the Debian archive
# (`debootstrap --variant=minbase bookworm`, as tests/plugins/containers.py does; pass
# `--build-arg BASE=<that image>`). The agent is installed from the project's metadata
# (pyproject.toml, the `agent` extra): the seed toolkit (ansible, bcrypt, nats-server) stays
# on the operator's machine.

ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/monitor-agent
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor_agent ./monitor_agent
RUN /opt/monitor-agent/bin/pip install --no-cache-dir --disable-pip-version-check '.[agent]' \
 && /opt/monitor-agent/bin/pip uninstall -y --disable-pip-version-check pip setuptools

FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
# python3: the interpreter the venv above was made with (same path, same version).
# sqlite3: the seed documentation's diagnostic commands run it inside the container.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 sqlite3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# A fixed numeric uid/gid so volume ownership and `runAsNonRoot` checks are predictable.
RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid monitor --home-dir /app --shell /usr/sbin/nologin monitor \
 && mkdir -p /app/data \
 && chown -R monitor:monitor /app

COPY --from=build /opt/monitor-agent /opt/monitor-agent
ENV PATH=/opt/monitor-agent/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app
# Inside a container the API must listen on all interfaces; the compose file publishes it on
# the host's loopback only. The database is $DATA_DIR/truebit-monitor.db.
ENV DATA_DIR=/app/data \
    MONITOR_HOST=0.0.0.0
VOLUME ["/app/data"]
EXPOSE 8090
USER 10001:10001

# Build with `--format docker` under podman: the OCI image format has no HEALTHCHECK.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('MONITOR_PORT', '8090'), timeout=4).status == 200 else 1)"]

ENTRYPOINT ["monitor-agent"]
CMD ["run"]
