#!/usr/bin/env bash
# Debian packages the workbench uses: espeak-ng (offline speech input), sox, and chromium for the
# headless-browser check of the HTML report.  Installed only when missing; needs root (as on CI).
set -euo pipefail
need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v sox >/dev/null || need+=(sox)
command -v chromium >/dev/null || need+=(chromium chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-packages: missing ${need[*]}; install them with apt-get (needs root)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
