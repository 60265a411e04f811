#!/usr/bin/env bash
# Debian packages the workbench uses: espeak-ng (offline speech input), sox, chromium for the
# headless-browser check of the HTML report, and for live audio (`rvc-lab live`, its tests) the JACK
# server with its tools (jackd2: jackd, jack_lsp, jack_connect, ...) and PortAudio (libportaudio2),
# and g++ (build-essential) for the reference C++ host that `rvc-lab port-check` builds.
# Installed only when missing; needs root (as on CI).  Under RVC_LAB_STRICT=1 (.ci/run) a package
# that cannot be installed is a failure with the reason, not a warning.
set -euo pipefail
need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v sox >/dev/null || need+=(sox)
command -v chromium >/dev/null || need+=(chromium chromium-driver)
{ command -v jackd >/dev/null && command -v jack_connect >/dev/null; } || need+=(jackd2)
{ ldconfig -p 2>/dev/null | grep -q 'libportaudio\.so\.2'; } || need+=(libportaudio2)
command -v g++ >/dev/null || need+=(build-essential)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-packages: missing ${need[*]}; install them with apt-get (needs root)" >&2
  [ "${RVC_LAB_STRICT:-0}" = 1 ] && { echo "system-packages: RVC_LAB_STRICT=1: failing (not root)" >&2; exit 1; }
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null || { echo "system-packages: apt-get could not install ${need[*]}" >&2; exit 1; }
