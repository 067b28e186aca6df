#!/usr/bin/env bash
# Installs every Debian 12 package Tessera needs to build, test and run. Idempotent; run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" != 0 ]; then echo "install-deps: run as root (apt-get)"; exit 1; fi
# The server runs its own PostgreSQL cluster; the distribution's default cluster is not needed.
mkdir -p /etc/postgresql-common
[ -f /etc/postgresql-common/createcluster.conf ] || echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
packages=(
  build-essential cmake ninja-build ccache pkg-config git ca-certificates procps util-linux
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libpqxx-dev catch2 libsodium-dev libspdlog-dev libcli11-dev libyaml-cpp-dev libbenchmark-dev
  postgresql-15 openssl libssl-dev libarchive-dev
  bubblewrap
  # the metrics port (cpp-httplib) and the test that scrapes it with a real Prometheus
  libcpp-httplib-dev prometheus
  # container jobs that name an OCI image (the tests import one made from this machine's files)
  podman crun
  python3-grpcio python3-protobuf
  # the Python client (clients/python), installed with pip from the checkout, no index
  python3-pip python3-setuptools python3-yaml
  # the main job: a customer's own PyTorch program, on the CPU
  python3-torch
  clang-14 libclang-rt-14-dev
)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
