#!/usr/bin/env bash
# Set up a fresh machine for spiker: system tools (GHDL, yosys, Icarus Verilog) and a
# virtualenv in .venv with spiker and its dev extras. Safe to run again: it only
# installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# ghdl-llvm: GHDL's native-code backend, ~1.8x faster simulation than the default mcode (spiker/hdl/tools.py)
for tool in ghdl ghdl-llvm yosys iverilog; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
# chromium + chromium-driver: the web run browser's test drives a real headless browser (Selenium)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# docker.io: dockerd for the Docker sweep executor's real-engine tests (they start it as root, else skip)
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
if ((${#need_apt[@]})); then
  echo "setup: installing ${need_apt[*]} (Debian packages)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
stamp=.venv/.spiker-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  # The CPU build of torch first, pinned, so nothing can pull a CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
