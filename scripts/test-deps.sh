#!/usr/bin/env bash
# Installs what the test suite needs and a fresh machine lacks; idempotent and quick when
# everything is already there. Used by scripts/test.sh (the README's test command) and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python clients the integration tests drive the gateway with.
if ! python3 -c 'import openai, anthropic' 2>/dev/null; then
  echo "test-deps: installing the openai and anthropic Python SDKs"
  python3 -m pip install --quiet --disable-pip-version-check openai anthropic
fi

# HTTP/2 in Python: httpx(2)'s http2 support (the openai SDK over HTTP/2 in
# tests/client_http2_tls.rs) and the frame-level client of tests/python/h2_conformance.py.
if ! python3 -c 'import h2, hpack, hyperframe' 2>/dev/null; then
  echo "test-deps: installing h2 (HTTP/2 for httpx and the HTTP/2 conformance run)"
  python3 -m pip install --quiet --disable-pip-version-check h2
fi

# The official OTLP protobuf types: tests/python/otlp_receiver.py decodes the gateway's traces.
if ! python3 -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2' 2>/dev/null; then
  echo "test-deps: installing opentelemetry-proto (the OTLP receiver of tests/tracing.rs)"
  python3 -m pip install --quiet --disable-pip-version-check opentelemetry-proto
fi

# curl drives the gateway in tests; openssl makes the TLS test's private CA.
for tool in curl openssl; do
  if ! command -v "$tool" >/dev/null; then
    echo "test-deps: installing $tool"
    apt-get update -qq && apt-get install -y -qq "$tool"
  fi
done

# systemd-analyze checks deploy/systemd/infergate.service in tests/systemd_unit.rs (verify and
# security work offline: systemd need not be running; Debian's systemd package has the tool).
if ! command -v systemd-analyze >/dev/null; then
  echo "test-deps: installing systemd (systemd-analyze)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd
fi

# promtool checks /metrics and a Prometheus server scrapes it in tests/metrics.rs (Debian's
# prometheus package has both).
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  echo "test-deps: installing prometheus (promtool and the server)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus
fi

# The embedding model, when the embedder is part of this checkout.
if [ -x scripts/fetch-model.sh ]; then
  scripts/fetch-model.sh
fi

# NVRTC (CUDA 13) for tests/gpu_kernels_compile.rs: compiles kernels/*.cu to PTX without a GPU.
if ! python3 -c 'import nvidia, os, sys; sys.exit(0 if any(os.path.exists(os.path.join(p, "cu13", "lib", "libnvrtc.so.13")) for p in nvidia.__path__) else 1)' 2>/dev/null; then
  echo "test-deps: installing nvidia-cuda-nvrtc (NVRTC for the CUDA kernel compile check)"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps 'nvidia-cuda-nvrtc>=13,<14'
fi

