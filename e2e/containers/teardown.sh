#!/usr/bin/env bash
# Stops the engine setup.sh started (by its pid file) and unmounts what it left behind.
# Keeps the data root (and so the cached images) unless WSPK_E2E_PURGE=1.
set -uo pipefail

WORK="${WSPK_E2E_WORK:-/var/tmp/ws-proxy-kit-e2e}"
log() { printf '[e2e-containers] %s\n' "$*" >&2; }

if [ -f "$WORK/dockerd.pid" ]; then
  pid=$(cat "$WORK/dockerd.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    # dockerd stops its containers (10 s grace each) before exiting.
    for _ in $(seq 1 300); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "dockerd $pid still running after 30 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "dockerd $pid stopped"
  fi
  rm -f "$WORK/dockerd.pid"
fi
rm -f "$WORK/docker.sock"

# Deepest mount points first: overlay mounts, netns and shm mounts under the work dir.
if [ -d "$WORK" ]; then
  awk -v w="$WORK" '$2 == w || index($2, w "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"; done
fi
if [ -n "${WSPK_E2E_PURGE:-}" ]; then
  rm -rf "$WORK"
  log "removed $WORK"
fi
