# syntax=docker/dockerfile:1
# One Dockerfile for all five service images (why: deploy/docker/README.md). From the repo root:
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=customer \
#     -t ghcr.io/open-crm/crm-customer:0.1.0 .

# Bump the patch (or pin a digest: python:3.11.14-slim-bookworm@sha256:...) here only; every stage uses it.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- protos: generated stubs (shared/gen). grpcio-tools lives in this throw-away venv only. ------
FROM ${PYTHON_IMAGE} AS protos
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/ requirements/
# protos/build.py takes google/api/*.proto from googleapis-common-protos and validate.proto from
# protovalidate, both runtime requirements, installed beside grpcio-tools (pinned by constraints.txt).
RUN python -m venv /opt/tools \
 && /opt/tools/bin/pip install --only-binary=:all: -c requirements/constraints.txt \
      -r requirements/runtime.txt grpcio-tools
COPY protos/ protos/
RUN /opt/tools/bin/python protos/build.py

# --- venv: the runtime requirements only, wheels only (no compiler anywhere), no pip inside. ------
FROM ${PYTHON_IMAGE} AS venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements/ requirements/
RUN python -m venv --without-pip /opt/venv \
 && python -m pip --python /opt/venv/bin/python install --only-binary=:all: \
      -c requirements/constraints.txt -r requirements/runtime.txt

# --- app: the source roots of one service, byte-compiled so a read-only root filesystem is fine. --
FROM ${PYTHON_IMAGE} AS app
ARG SERVICE
COPY shared/crm_shared/ /app/shared/crm_shared/
COPY --from=protos /src/shared/gen/ /app/shared/gen/
COPY services/${SERVICE}/crm_${SERVICE}/ /app/services/${SERVICE}/crm_${SERVICE}/
# unchecked-hash: the .pyc files stay valid whatever timestamps the layers end up with.
RUN python -m compileall -q --invalidation-mode unchecked-hash /app

# --- runtime ----------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="crm-${SERVICE}" \
      org.opencontainers.image.description="Open CRM ${SERVICE} service (gRPC on 50051, Prometheus metrics on 9090)" \
      org.opencontainers.image.source="https://github.com/open-crm/crm" \
      org.opencontainers.image.url="https://github.com/open-crm/crm/tree/main/services/${SERVICE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.vendor="open-crm"
# CRM_SERVICE tells the entry point which service this image is (ARG values do not reach exec-form
# ENTRYPOINTs). HOME=/tmp: nothing may expect a writable home on a read-only root filesystem.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    CRM_SERVICE=${SERVICE}
RUN groupadd --system --gid 10001 crm \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin crm
COPY --from=venv /opt/venv/ /opt/venv/
COPY --from=app /app/ /app/
COPY --chmod=0755 deploy/docker/service-entrypoint.sh /usr/local/bin/crm-service
# The Makefile's SOURCE_ROOTS for one service (minus gateway/ and loadtests/), as a .pth file on the
# venv's path: the same imports as `make venv`, no editable install.
RUN case "${SERVICE}" in ""|*[!a-z]*) echo "build with --build-arg SERVICE=<customer|sales|...>" >&2; exit 1;; esac \
 && printf '%s\n' /app/shared /app/shared/gen "/app/services/${SERVICE}" \
      > /opt/venv/lib/python3.11/site-packages/crm-project.pth \
 && python -m "crm_${SERVICE}" --help > /dev/null \
 && python -c "import crm_${SERVICE}.bootstrap, crm_shared.grpc.healthcheck"
WORKDIR /app
USER 10001:10001
EXPOSE 50051 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "crm_shared.grpc.healthcheck", "--address", "127.0.0.1:50051", "--timeout", "3"]
# `docker run IMAGE` serves; `docker run IMAGE migrate` applies the schema; `docker run IMAGE --help`.
ENTRYPOINT ["/usr/local/bin/crm-service"]
