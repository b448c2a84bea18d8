# tsos-rules as a container: `podman build -t tsos-rules:0.1.0 .` (or docker build), then
# `podman run --rm tsos-rules:0.1.0` runs the demo (the embedded demo CRM, annotate mode).
# Any other command: `podman run --rm -v state:/state tsos-rules:0.1.0 sync --config ...`.
# tests/docs/test_dockerfile.py runs these install steps in a clean venv.

# -- build: wheels for tsos-rules and every dependency (durable-rules ships a source archive
#    only, so its wheel needs a C compiler, which stays in this stage)
FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

# -- run: the wheels only, as a non-root user
FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links /wheels tsos-rules \
 && rm -rf /wheels
RUN useradd --create-home --uid 10001 tsos \
 && mkdir /state \
 && chown tsos /state
USER tsos
WORKDIR /home/tsos
# The demo CRM and the sync state (mount a volume here to keep them; docs/sync.md).
ENV TSOS_RULES_DATA_DIR=/state
ENTRYPOINT ["tsos-rules"]
CMD ["sync", "--html", "/state/tsos-report.html"]
