#!/usr/bin/env bash
# Starts a private Docker engine and builds the e2e images from Debian packages, because no
# engine runs on a fresh machine and no registry can be reached (see ../shared/CONTAINERS.md).
# Idempotent: reuses a running engine and images that already exist. Needs root.
# Prints `DOCKER_HOST=unix://...` as its last line (also in $WSPK_E2E_WORK/docker-host).
#
# Environment: WSPK_E2E_WORK (default /var/tmp/ws-proxy-kit-e2e), WSPK_E2E_REBUILD=1 to
# rebuild the images, WSPK_E2E_NO_INSTALL=1 to skip apt-get.
set -euo pipefail

WORK="${WSPK_E2E_WORK:-/var/tmp/ws-proxy-kit-e2e}"
SOCK="$WORK/docker.sock"
export DOCKER_HOST="unix://$SOCK"
NGINX_IMAGE=local/wspk-nginx:e2e
SYSTEMD_IMAGE=local/wspk-systemd:e2e
# The systemd image with systemd 254 from bookworm-backports: Type=notify-reload needs 253+.
SYSTEMD_BPO_IMAGE=local/wspk-systemd-bpo:e2e
SUITE=bookworm

# Timings from bash's microsecond clock (no bc needed).
now() { echo "${EPOCHREALTIME/./}"; }
elapsed() { local us=$(( $(now) - $1 )); printf '%d.%d s' $(( us / 1000000 )) $(( us / 100000 % 10 )); }
started_all=$(now)
log() { printf '[e2e-containers] %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "must run as root (it starts dockerd and runs debootstrap); try: sudo $0"
  exit 1
fi
mkdir -p "$WORK"

# --- packages -----------------------------------------------------------------------------
if [ -z "${WSPK_E2E_NO_INSTALL:-}" ] && ! { command -v dockerd && command -v debootstrap; } >/dev/null; then
  t=$(now)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null
  log "installed docker.io debootstrap in $(elapsed "$t")"
fi

# --- engine -------------------------------------------------------------------------------
engine_up() { docker -H "$DOCKER_HOST" info >/dev/null 2>&1; }
t=$(now)
if engine_up; then
  log "engine already running ($DOCKER_HOST)"
else
  if [ -f "$WORK/dockerd.pid" ] && kill -0 "$(cat "$WORK/dockerd.pid")" 2>/dev/null; then
    log "dockerd $(cat "$WORK/dockerd.pid") is running but not answering yet"
  else
    rm -f "$WORK/dockerd.pid" "$SOCK"
    # No bridge and no iptables: this host's kernel/netns does not allow them; tests share
    # UNIX sockets through bind mounts or use the host network.
    setsid dockerd --storage-driver=overlay2 --iptables=false --ip6tables=false --bridge=none \
      --data-root "$WORK/docker" --exec-root "$WORK/exec" \
      -H "$DOCKER_HOST" --pidfile "$WORK/dockerd.pid" >"$WORK/dockerd.log" 2>&1 </dev/null &
  fi
  deadline=$(( $(date +%s) + 60 ))
  until engine_up; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
      log "dockerd did not answer within 60 s; its log ($WORK/dockerd.log):"
      tail -n 30 "$WORK/dockerd.log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  log "engine ready in $(elapsed "$t")"
fi

# --- images -------------------------------------------------------------------------------
# The Debian mirror apt already uses (deb822 .sources or one-line .list), for the main suite.
debian_mirror() {
  local f uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk -v s="$SUITE" '
      BEGIN { RS = ""; FS = "\n" }
      {
        u = ""; ok = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { split(substr($i, 6), a, " "); u = a[1] }
          if ($i ~ /^Suites:/) { n = split(substr($i, 8), b, " "); for (j = 1; j <= n; j++) if (b[j] == s) ok = 1 }
        }
        if (ok && u != "") { print u; exit }
      }' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk -v s="$SUITE" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i+1) == s) { print $i; exit } else break } }')
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

image_packages() { docker -H "$DOCKER_HOST" image inspect -f '{{ index .Config.Labels "wspk.packages" }}' "$1" 2>/dev/null || true; }

# build_image TAG PACKAGES [import --change args...]
build_image() {
  local tag=$1 include=$2
  shift 2
  # The package list is stored as a label: an image built from another list is rebuilt.
  if [ -z "${WSPK_E2E_REBUILD:-}" ] && [ "$(image_packages "$tag")" = "$include" ]; then
    log "image $tag present (cached)"
    return
  fi
  local t rootfs mirror
  t=$(now)
  mirror=$(debian_mirror)
  rootfs="$WORK/rootfs-${tag//[^a-z0-9]/-}"
  rm -rf "$rootfs"
  log "building $tag: debootstrap --variant=minbase --include=$include $SUITE from $mirror"
  if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
    log "debootstrap failed for $tag; last lines of $rootfs.log:"
    tail -n 30 "$rootfs.log" >&2
    exit 1
  fi
  # Caches and lists halve the image; the containers never run apt.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
  # systemd generates a fresh machine id on each boot when the file is empty.
  : >"$rootfs/etc/machine-id"
  tar -C "$rootfs" -c . | docker -H "$DOCKER_HOST" import --change "LABEL wspk.packages=$include" "$@" - "$tag" >/dev/null
  rm -rf "$rootfs"
  log "image $tag built in $(elapsed "$t")"
}

# Both images at once, so downloads and unpacking overlap (100-130 s for both on 2 cores).
build_image "$NGINX_IMAGE" nginx &
nginx_build=$!
# procps: /bin/kill, which the service's ExecReload runs (any real server has it).
build_image "$SYSTEMD_IMAGE" nginx,systemd,systemd-sysv,dbus,curl,procps \
  --change 'ENV container=docker' --change 'CMD ["/sbin/init"]' &
systemd_build=$!
status=0
wait "$nginx_build" || status=1
wait "$systemd_build" || status=1
[ "$status" = 0 ] || { log "image build failed"; exit 1; }

# The backports image is the systemd image plus one apt-get run (host network: containers
# have none). It records the base image's id, so a rebuilt base rebuilds it.
base_id=$(docker -H "$DOCKER_HOST" image inspect -f '{{ .Id }}' "$SYSTEMD_IMAGE")
bpo_base=$(docker -H "$DOCKER_HOST" image inspect -f '{{ index .Config.Labels "wspk.base" }}' "$SYSTEMD_BPO_IMAGE" 2>/dev/null || true)
if [ -z "${WSPK_E2E_REBUILD:-}" ] && [ "$bpo_base" = "$base_id" ]; then
  log "image $SYSTEMD_BPO_IMAGE present (cached)"
else
  t=$(now)
  mirror=$(debian_mirror)
  log "building $SYSTEMD_BPO_IMAGE: systemd from bookworm-backports ($mirror) on $SYSTEMD_IMAGE"
  if ! printf '%s\n' \
    "FROM $SYSTEMD_IMAGE" \
    "RUN echo 'deb $mirror bookworm-backports main' > /etc/apt/sources.list.d/backports.list && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports systemd systemd-sysv && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb && systemctl --version" \
    "LABEL wspk.base=$base_id" |
    docker -H "$DOCKER_HOST" build --network host -t "$SYSTEMD_BPO_IMAGE" - >"$WORK/build-systemd-bpo.log" 2>&1; then
    log "building $SYSTEMD_BPO_IMAGE failed; last lines of $WORK/build-systemd-bpo.log:"
    tail -n 30 "$WORK/build-systemd-bpo.log" >&2
    exit 1
  fi
  log "image $SYSTEMD_BPO_IMAGE built in $(elapsed "$t") ($(grep -m1 '^systemd [0-9]' "$WORK/build-systemd-bpo.log" || echo 'systemd version not printed'))"
fi

log "ready in $(elapsed "$started_all") total"
echo "$DOCKER_HOST" >"$WORK/docker-host"
echo "DOCKER_HOST=$DOCKER_HOST"
