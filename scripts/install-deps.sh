#!/usr/bin/env bash
# Installs every system package skiff's tests and benchmarks use on a fresh Debian 12 machine (run as root).
# docker.io is dockerd, the peer the interop tests and the benchmarks run beside skiff (they start private
# instances of their own); its /usr/bin/docker comes after the docker CLI 28 in /usr/local/bin on PATH.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential pkg-config libseccomp-dev protobuf-compiler libprotobuf-dev \
  runc crun tini busybox-static etcd-server docker-registry \
  iproute2 nftables util-linux procps curl ca-certificates docker-compose docker.io jq >/dev/null
# Python clients used by the end-to-end tests, into the python3 the tests run (pyenv's where present).
if ! python3 -m pip --version >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
  export PIP_BREAK_SYSTEM_PACKAGES=1
fi
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check 'docker>=7.1,<8' 'kubernetes>=31'
