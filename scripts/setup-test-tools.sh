#!/usr/bin/env bash
# Installs what `npm test` needs beyond node_modules, if missing: Chromium for Playwright, QEMU's
# reference tools (qemu-img, qemu-io, qemu-nbd; qemu-system-x86_64 for QMP), SeaBIOS for v86.
# The guest build installs its own tools (scripts/build-guest.sh).
set -euo pipefail
# shellcheck source=lib/host-tools.sh
source "$(dirname "$0")/lib/host-tools.sh"

ensure_host_tools "chromium:chromium qemu-utils:qemu-img qemu-system-x86:qemu-system-x86_64
seabios:/usr/share/seabios/bios.bin"
