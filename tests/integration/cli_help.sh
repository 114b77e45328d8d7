#!/usr/bin/env bash
# Every subcommand explains itself with --help, listing its options and defaults.
set -uo pipefail
gtune="$1"
fail() { echo "FAIL: $*"; exit 1; }
"$gtune" --help >/dev/null || fail "gtune --help"
subs=$("$gtune" --help | awk '/^Subcommands:/ {on=1; next} on && NF {print $1}')
[ -n "$subs" ] || fail "no subcommands listed"
for s in $subs; do
  out=$("$gtune" "$s" --help) || fail "$s --help exited $?"
  grep -q -- "--" <<<"$out" || fail "$s --help lists no options"
done
"$gtune" >/dev/null 2>&1 && fail "gtune without a subcommand should fail"
echo "cli_help: ok ($(echo $subs | wc -w) subcommands)"
