#!/usr/bin/env bash
# Load (issue 19): 16 client nodes train against one server node at once. Each finishes with
# the adapters and losses of its run alone; the server's sessions return to 0 and its RSS and
# file descriptors to about their idle values. Prints throughput across clients against one
# client alone. See lib/load.py.
set -euo pipefail
exec python3 "$(dirname "$0")/lib/load.py" "$1" "$2" --clients 16
