#!/bin/sh
# Entry point of the service images: `docker run IMAGE [serve | migrate | --help | ...]`.
#
# Fills in container defaults for the service's settings, each only when the environment does not
# set it already (Kubernetes sets them all explicitly): listen on every interface, because a
# container's loopback is its own; gRPC on 50051 and metrics on 9090, the ports the image exposes;
# JSON logs. Then it becomes the service process (exec), so SIGTERM reaches Python directly.
set -eu

case "${CRM_SERVICE:-}" in
  "" | *[!a-z]*)
    echo "crm-service: CRM_SERVICE must name the service (customer, sales, contract, ...)" >&2
    exit 2
    ;;
esac

prefix="CRM_$(printf '%s' "$CRM_SERVICE" | tr '[:lower:]' '[:upper:]')_"
for default in GRPC_HOST=0.0.0.0 GRPC_PORT=50051 METRICS_PORT=9090 LOG_JSON=true; do
  name="$prefix${default%%=*}"
  # $name is built from [A-Z_] only (checked above), so eval sees no user text.
  eval "already=\${$name+set}"
  if [ -z "$already" ]; then
    export "$name=${default#*=}"
  fi
done

exec python -m "crm_$CRM_SERVICE" "$@"
