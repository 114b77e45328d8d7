#!/usr/bin/env bash
# Three hosts on a private test network: network namespaces joined by veth pairs, a server
# node in one (10.231.1.1) and a client node in each of the other two (10.231.1.2 on the
# server's link, 10.231.2.2 on a second link routed through the server's host). Both clients
# run at once over mutual TLS; each gets exactly what a single-process `gtune simulate` of the
# same config and seed gets (per-step losses, held-out losses, bytes, adapters). Over there,
# plaintext without --insecure is refused. Namespaces are removed on exit, failed or not.
# Needs root (CAP_NET_ADMIN) and iproute2; skipped (77) only when namespaces cannot be made.
set -uo pipefail
gtune="$1" src="$2"
cfg="$src/tests/integration/online-plain.toml"
tmp=$(mktemp -d)
id="gt$$"
ns_server="$id-srv" ns_c1="$id-c1" ns_c2="$id-c2"
pids=()
cleanup() {
  local p n
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  # Whatever still runs in our namespaces was started here; then deleting a namespace deletes
  # its end of each veth pair, and with it the other end.
  for n in "$ns_server" "$ns_c1" "$ns_c2"; do
    for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$n" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "node_netns: interrupted"; exit 1' INT TERM
fail() {
  echo "FAIL: $*"
  local f
  for f in "$tmp"/*.err; do
    [ -s "$f" ] && { echo "--- $(basename "$f") (last lines)"; tail -6 "$f"; }
  done
  exit 1
}
skip() {
  echo "SKIP: $*"
  exit 77
}

command -v ip >/dev/null || skip "iproute2's ip is missing (apt-get install iproute2)"
command -v openssl >/dev/null || fail "the openssl command is missing (scripts/install-deps)"
ip netns add "$ns_server" 2>"$tmp/netns.err" ||
  skip "cannot create a network namespace (needs root / CAP_NET_ADMIN): $(cat "$tmp/netns.err")"
ip netns add "$ns_c1" && ip netns add "$ns_c2" || fail "cannot create the client namespaces"

in_ns() {
  local ns="$1"
  shift
  ip netns exec "$ns" "$@"
}
# link <client ns> <server address> <client address> <n>: a veth pair, one end in each.
link() {
  local ns="$1" saddr="$2" caddr="$3" n="$4"
  ip link add "$id-s$n" netns "$ns_server" type veth peer name "$id-c$n" netns "$ns" ||
    fail "cannot create veth pair $n"
  ip -n "$ns_server" addr add "$saddr/24" dev "$id-s$n" &&
    ip -n "$ns" addr add "$caddr/24" dev "$id-c$n" &&
    ip -n "$ns_server" link set "$id-s$n" up &&
    ip -n "$ns" link set "$id-c$n" up &&
    ip -n "$ns" link set lo up || fail "cannot configure veth pair $n"
}
ip -n "$ns_server" link set lo up || fail "cannot bring up lo in $ns_server"
link "$ns_c1" 10.231.1.1 10.231.1.2 1
link "$ns_c2" 10.231.2.1 10.231.2.2 2
# The second client reaches the server's 10.231.1.1 through the server's host.
ip -n "$ns_c2" route add 10.231.1.0/24 via 10.231.2.1 || fail "cannot route 10.231.1.0/24 in $ns_c2"

"$src/scripts/make-test-certs" "$tmp/certs" 10.231.1.1 >/dev/null || fail "make-test-certs failed"
c="$tmp/certs"
common=(--config "$cfg" --set training.steps=4 --set data.train_examples=64
  --set data.valid_examples=8 --set training.seed=11 --set scheduler.control= --quiet --metrics 0)

# The reference: one process, no network.
timeout 120 "$gtune" simulate "${common[@]}" --out "$tmp/sim" >"$tmp/sim.out" 2>"$tmp/sim.err" ||
  fail "gtune simulate failed"

# Plaintext to a non-loopback address is refused in the namespace too.
in_ns "$ns_c1" timeout 60 "$gtune" node --role client --connect 10.231.1.1:9 "${common[@]}" \
  >"$tmp/plain.out" 2>&1 && fail "a plaintext client to 10.231.1.1 was accepted"
grep -q -- "--connect 10.231.1.1: not a loopback address.*--tls-cert/--tls-key/--tls-ca" \
  "$tmp/plain.out" || fail "plaintext client: unclear error: $(cat "$tmp/plain.out")"

# Background processes: `ip netns exec` itself (it execs the command), not a function (a
# subshell), so that $! is the node and a signal reaches it.
ip netns exec "$ns_server" "$gtune" node --role server --listen 10.231.1.1:0 --port-file "$tmp/port" \
  --tls-cert "$c/server.pem" --tls-key "$c/server.key" --tls-ca "$c/ca.pem" "${common[@]}" \
  >"$tmp/server.out" 2>"$tmp/server.err" &
server=$!
pids+=("$server")
for ((i = 0; i < 600; i++)); do
  [ -s "$tmp/port" ] && break
  kill -0 "$server" 2>/dev/null || fail "the server exited before listening"
  sleep 0.1
done
[ -s "$tmp/port" ] || fail "the server did not listen"
port=$(cat "$tmp/port")
grep -q "listening on 10.231.1.1:$port (TLS" "$tmp/server.err" || fail "server did not log TLS"

# Both clients at once, each from its own namespace.
for n in 1 2; do
  ns_var="ns_c$n"
  ip netns exec "${!ns_var}" timeout -k 5 120 "$gtune" node --role client --connect "10.231.1.1:$port" \
    --tls-cert "$c/client.pem" --tls-key "$c/client.key" --tls-ca "$c/ca.pem" \
    --set "run.name=client$n" "${common[@]}" --out "$tmp/c$n" >"$tmp/c$n.out" 2>"$tmp/c$n.err" &
  pids+=($!)
  client_pid[n]=$!
done
for n in 1 2; do
  wait "${client_pid[$n]}"
  code=$?
  [ "$code" -eq 0 ] || fail "client $n exited $code"
done

for n in 1 2; do
  python3 - "$tmp/sim/results.json" "$tmp/c$n/results.json" <<'EOF' || fail "client $n differs from simulate (above)"
import json, sys
a, b = (json.load(open(p), parse_float=str, parse_int=str)["clients"][0] for p in sys.argv[1:3])
bad = []
if len(a["steps"]) != len(b["steps"]) or len(a["steps"]) != 4:
    bad.append(f"step records: {len(a['steps'])} vs {len(b['steps'])}")
for x, y in zip(a["steps"], b["steps"]):
    if (x["step"], x["loss"]) != (y["step"], y["loss"]):
        bad.append(f"step {x['step']}: loss {x['loss']} vs {y['loss']}")
    # Links are named after the client (run.name): compare bytes by direction and kind.
    key = lambda e: (e["direction"], e["kind"], e["bytes"])
    if sorted(map(key, x["bytes"])) != sorted(map(key, y["bytes"])):
        bad.append(f"step {x['step']}: bytes {x['bytes']} vs {y['bytes']}")
if [(e["step"], e["loss"], e["tokens"]) for e in a["evals"]] != \
   [(e["step"], e["loss"], e["tokens"]) for e in b["evals"]]:
    bad.append(f"evals {a['evals']} vs {b['evals']}")
for k in ("steps", "step_bytes_up", "step_bytes_down", "bytes_per_step"):
    if a["totals"][k] != b["totals"][k]:
        bad.append(f"totals.{k} {a['totals'][k]} vs {b['totals'][k]}")
for line in bad[:20]:
    print(line)
sys.exit(1 if bad else 0)
EOF
  cmp -s "$tmp/sim/adapters.safetensors" "$tmp/c$n/adapters.safetensors" ||
    fail "client $n's adapters.safetensors differ from simulate's"
done

kill -TERM "$server"
wait "$server"
code=$?
pids=()
[ "$code" -eq 0 ] || fail "the server exited $code on SIGTERM"
! grep -qE "frame #|terminate called|Segmentation|\[error\]|refused the peer" "$tmp/server.err" ||
  fail "the server logged an error or refused a good client"
echo "node_netns: ok (server 10.231.1.1, clients 10.231.1.2 and 10.231.2.2, TLS)"
