#!/usr/bin/env bash
# Chaos (issue 19): a server, an emulator builder, an attacker, a scheduler and three clients
# as separate nodes run a plan of two phases (offline, then online); each is killed with
# kill -9 at a seeded random point and started again with the same command. The adapters of
# every client (and the server's plugged copies) equal an uninterrupted `gtune simulate` of the
# plan byte for byte, and so do the results (losses, evaluations, bytes of each step); bytes
# of steps begun again are counted apart. Three seeds. See lib/chaos.py.
set -euo pipefail
exec python3 "$(dirname "$0")/lib/chaos.py" "$1" "$2" --seeds 1,2,3
