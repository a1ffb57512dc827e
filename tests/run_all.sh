#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs — the package with its test
# extras and Debian's headless Chromium for the browser tests — then runs pytest.
# README's quick start and .ci/run both call exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! [ -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test]"
mkdir -p test-artifacts
python3 -m pytest "$@"
