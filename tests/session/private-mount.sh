#!/bin/sh
# Runs a command with a private tmpfs on DIR holding a copy of SRC, so that the target sees a file the host
# does not have (or has in another version). Meant to run under `unshare -m`. Usage: DIR SRC CMD...
set -eu
dir=$1
src=$2
shift 2
mount -t tmpfs rsprof-session "$dir"
cp "$src" "$dir/"
exec "$@"
