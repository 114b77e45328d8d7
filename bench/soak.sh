#!/usr/bin/env bash
# Soak test of a `gtune node --role server` (issue 7): one server on loopback, N client nodes
# (default 4) running short online runs back to back against it for a bounded time, so
# sessions open and close all the time, and a killer that every ~20 s kills one of those
# clients with kill -9 mid-run (the server's down handling). Every 2 s the server's RSS
# (/proc/PID/status), its open file descriptors (/proc/PID/fd) and its gtune_sessions gauge
# (its --metrics endpoint) go into samples.csv. At the end the server gets SIGTERM and must
# exit 0; a summary says how many runs completed, how many clients were killed, how many
# steps the server served, and how the server's memory and descriptors moved after warm-up.
#
# usage: bench/soak.sh GTUNE [DURATION_S [OUT_DIR]] [options]
#   GTUNE         path to the gtune binary (build/release/apps/gtune)
#   DURATION_S    how long new runs are started, seconds (default 300)
#   OUT_DIR       where logs, samples.csv and summary.txt go (default: a new temp directory,
#                 kept)
# options:
#   --threshold PCT     fail when the server's RSS grows by more than PCT % after warm-up
#                       (median of the first minute after warm-up vs median of the last
#                       minute; default 10)
#   --fd-limit N        fail when the server's open fds grow by more than N (default 16)
#   --clients N         client slots kept busy (default 4)
#   --kill-every S      kill -9 a training client every S seconds; 0 = never (default 20)
#   --steps N           training.steps of each client run (default 20)
#   --drain S           after DURATION_S, seconds the runs in flight get to finish before
#                       they are stopped and counted as "cut" (default 240)
#   --run-cap S         a client run longer than this is a failure (default 900)
#   --reuse-names       each slot reuses one run.name (default: a new run.name every run)
#   --server-env K=V    environment of the server only, e.g. MALLOC_ARENA_MAX=2 (repeatable)
#   --config FILE       client and server configuration (default tests/integration/online-plain.toml:
#                       online without the privatize phase and the attacker, which nodes here lack)
#   --malloc-stats      attach gdb to the idle server before the first client and again at the
#                       end (before SIGTERM): glibc's malloc_stats() (arenas, bytes in use),
#                       and at the end RSS before and after malloc_trim(0); tells memory the
#                       heap holds (a leak) from free memory glibc keeps in its arenas
#   --quiet             no progress lines
# The soak runs a copy of GTUNE (OUT_DIR/bin/gtune), so a rebuild meanwhile does not change it.
# Exit status: 0 all well; 1 a failure (the server died or did not exit 0 on SIGTERM, a client
# that was not killed failed, RSS or fds grew past the limits); 2 bad usage.
# OPENBLAS_NUM_THREADS and OMP_NUM_THREADS default to 1 (each process computes on one thread,
# run.threads=1).
set -uo pipefail

usage() {
  sed -n '/^# usage:/,/^# OPENBLAS/p' "$0" | sed -e 's/^# \{0,1\}//' -e '$d' >&2
  exit 2
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
gtune="" duration=300 out=""
threshold=10 fd_limit=16 clients=4 kill_every=20 steps=20 drain=240 run_cap=900
reuse_names=0 quiet=0 malloc_stats=0 config="$here/../tests/integration/online-plain.toml"
server_env=()
positional=()
while (($#)); do
  case "$1" in
    --threshold) threshold="${2:?}" && shift ;;
    --fd-limit) fd_limit="${2:?}" && shift ;;
    --clients) clients="${2:?}" && shift ;;
    --kill-every) kill_every="${2:?}" && shift ;;
    --steps) steps="${2:?}" && shift ;;
    --drain) drain="${2:?}" && shift ;;
    --run-cap) run_cap="${2:?}" && shift ;;
    --reuse-names) reuse_names=1 ;;
    --server-env) server_env+=("${2:?}") && shift ;;
    --config) config="${2:?}" && shift ;;
    --quiet) quiet=1 ;;
    --malloc-stats) malloc_stats=1 ;;
    -h | --help) usage ;;
    -*) echo "soak: unknown option $1" >&2 && usage ;;
    *) positional+=("$1") ;;
  esac
  shift
done
((${#positional[@]} >= 1 && ${#positional[@]} <= 3)) || usage
gtune="${positional[0]}"
duration="${positional[1]:-300}"
out="${positional[2]:-}"
for v in duration fd_limit clients kill_every steps drain run_cap; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "soak: $v must be a whole number, got '${!v}'" >&2 && exit 2; }
done
[[ "$threshold" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "soak: --threshold must be a number" >&2 && exit 2; }
((duration >= 10 && clients >= 1 && steps >= 1)) || { echo "soak: need DURATION_S >= 10, --clients >= 1, --steps >= 1" >&2 && exit 2; }
[ -x "$gtune" ] || { echo "soak: $gtune is not an executable" >&2 && exit 2; }
[ -r "$config" ] || { echo "soak: cannot read $config" >&2 && exit 2; }
for e in "${server_env[@]}"; do
  [[ "$e" == [A-Za-z_]*=* ]] || { echo "soak: --server-env wants NAME=VALUE, got '$e'" >&2 && exit 2; }
done
command -v python3 >/dev/null || { echo "soak: python3 is needed for the summary" >&2 && exit 2; }
command -v curl >/dev/null || { echo "soak: curl is needed to scrape the server's metrics" >&2 && exit 2; }
((malloc_stats == 0)) || command -v gdb >/dev/null || { echo "soak: --malloc-stats needs gdb" >&2 && exit 2; }
[ -n "$out" ] || out=$(mktemp -d /tmp/gtune-soak.XXXXXX)
mkdir -p "$out/runs" "$out/slots" "$out/bin" || exit 2
out=$(cd "$out" && pwd)
cp "$gtune" "$out/bin/gtune" || exit 2
echo "$(sha256sum <"$gtune" | cut -c1-16) $(date -u -r "$gtune" '+%F %T UTC') $gtune" >"$out/binary.txt"
gtune="$out/bin/gtune"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

# Microseconds since the epoch, and seconds since the start of the soak.
now_us() { local t="$EPOCHREALTIME"; echo $((10#${t/./})); }
say() { ((quiet)) || printf '[soak %4ds] %s\n' $((($(now_us) - t0_us) / 1000000)) "$*"; }
# A process that exists and is not a zombie (pure bash: the sampler and slots call it often).
alive() {
  local stat
  { stat=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z ]]
}

server=0 sampler=0 killer=0
slot_pids=()
cleanup() {
  local p f
  for p in "${slot_pids[@]}" "$killer" "$sampler"; do ((p > 0)) && kill -TERM "$p" 2>/dev/null; done
  for p in "${slot_pids[@]}" "$killer" "$sampler"; do ((p > 0)) && wait "$p" 2>/dev/null; done
  for f in "$out"/slots/*; do  # clients a slot could not stop
    [ -f "$f" ] && read -r p _ <"$f" && kill -9 "$p" 2>/dev/null
  done
  ((server > 0)) && alive "$server" && kill -9 "$server" 2>/dev/null && wait "$server" 2>/dev/null
  [ -n "$out" ] && rm -rf "${out:?}/bin"  # the copy of gtune (binary.txt says which it was)
  return 0
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- the server -------------------------------------------------------------------------------
t0_us=$(now_us)
common=(--config "$config" --set run.threads=1 --set scheduler.control= --quiet)
: >"$out/server.err"  # appended to (O_APPEND), so the markers of --malloc-stats stay in place
env "${server_env[@]}" "$gtune" node --role server --listen 127.0.0.1:0 --port-file "$out/server.port" \
  --metrics 127.0.0.1:0 "${common[@]}" >"$out/server.out" 2>>"$out/server.err" &
server=$!
for ((i = 0; i < 600; i++)); do
  [ -s "$out/server.port" ] && grep -q '^metrics ' "$out/server.out" && break
  alive "$server" || { echo "soak: FAIL: the server exited at start:" && tail -5 "$out/server.err" && exit 1; }
  sleep 0.2
done
[ -s "$out/server.port" ] || { echo "soak: FAIL: the server did not listen within 120 s" && exit 1; }
port=$(<"$out/server.port")
metrics_url=$(awk '/^metrics /{print $2; exit}' "$out/server.out")
[ -n "$metrics_url" ] || { echo "soak: FAIL: the server printed no metrics URL" && exit 1; }

rss_kb() { awk '$1 == "VmRSS:" {print $2}' "/proc/$server/status" 2>/dev/null; }
# malloc_probe <label> [gdb command]: glibc's malloc_stats() of the server, which prints to the
# server's stderr, between two markers there; then the command.
malloc_probe() {
  echo "--- malloc_stats $1 (soak)" >>"$out/server.err"
  gdb -p "$server" -batch -ex 'call (void)malloc_stats()' ${2:+-ex "$2"} >>"$out/gdb.log" 2>&1 ||
    say "gdb failed (see $out/gdb.log)"
  sleep 1
  echo "--- end malloc_stats $1 (soak)" >>"$out/server.err"
}
((malloc_stats)) && malloc_probe start

# --- the sampler: every 2 s, one line of samples.csv ---------------------------------------------
sample_once() {  # sample_once <t_s>: prints one CSV line, or fails when the server is gone
  local k v rest rss=0 anon=0 file=0 threads=0 fds text sessions active
  while read -r k v rest; do
    case "$k" in
      VmRSS:) rss=$v ;;
      RssAnon:) anon=$v ;;
      RssFile:) file=$v ;;
      Threads:) threads=$v ;;
    esac
  done <"/proc/$server/status" 2>/dev/null || return 1
  local fdlist=("/proc/$server/fd/"*)
  fds=${#fdlist[@]}
  text=$(curl -s --max-time 5 "$metrics_url" 2>/dev/null)
  sessions=$(awk '$1 == "gtune_sessions" {print $2}' <<<"$text")
  local slots=("$out"/slots/*)
  active=0
  [ -e "${slots[0]}" ] && active=${#slots[@]}
  echo "$1,$rss,$anon,$file,$threads,$fds,${sessions:-0},$active,${#text}"
}
sampler_loop() {
  local next_us=$t0_us line
  trap 'exit 0' TERM
  while :; do
    line=$(sample_once "$(((next_us - t0_us) / 1000000))") || { touch "$out/server.gone" && exit 0; }
    echo "$line" >>"$out/samples.csv"
    next_us=$((next_us + 2000000))
    local wait_us=$((next_us - $(now_us)))
    ((wait_us > 0)) && sleep "$((wait_us / 1000000)).$(printf '%06d' $((wait_us % 1000000)))"
  done
}
echo "t_s,rss_kb,rss_anon_kb,rss_file_kb,threads,fds,sessions,clients_running,metrics_bytes" >"$out/samples.csv"
sample_once 0 >>"$out/samples.csv"  # idle, before any client
read -r load_start _ </proc/loadavg
sleep 1
t0_us=$(now_us)
deadline_us=$((t0_us + duration * 1000000))
sampler_loop &
sampler=$!
say "server pid $server on 127.0.0.1:$port, metrics $metrics_url; $clients clients for ${duration}s; out $out"

# --- client slots -----------------------------------------------------------------------------
# slot_loop <i>: runs clients back to back until the deadline. slots/<i> holds "PID NAME ERRFILE"
# of the client in flight (the killer reads it); runs/slot<i>.csv gets one line per run:
# name,slot,status,rc,start_s,end_s,dir (status: completed, killed, cut, failed, hung).
slot_loop() {
  local i="$1" n=0 name pid rc status start end dir
  trap '[ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null; exit 1' TERM
  while (($(now_us) < deadline_us)) && [ ! -e "$out/server.gone" ]; do
    n=$((n + 1))
    if ((reuse_names)); then name="c$i"; else name=$(printf 'c%d-r%03d' "$i" "$n"); fi
    dir=$(printf '%s/runs/c%d-r%03d' "$out" "$i" "$n")
    start=$(now_us)
    "$gtune" node --role client --connect "127.0.0.1:$port" "${common[@]}" --metrics 0 \
      --set training.steps="$steps" --set data.train_examples=200 --set data.valid_examples=16 \
      --set network.reconnect_seconds=0 --set run.name="$name" --out "$dir" \
      >"$dir.out" 2>"$dir.err" &
    pid=$!
    echo "$pid $name $dir.err" >"$out/slots/.$i.tmp" && mv "$out/slots/.$i.tmp" "$out/slots/$i"
    status=""
    while alive "$pid"; do
      sleep 0.5
      if [ -z "$status" ] && (($(now_us) - start > run_cap * 1000000)); then
        status="hung" && kill -9 "$pid" 2>/dev/null
      elif [ -z "$status" ] && (($(now_us) > deadline_us + drain * 1000000)); then
        status="cut" && kill -TERM "$pid" 2>/dev/null
      fi
    done
    wait "$pid" 2>/dev/null  # no "Killed" job notice
    rc=$?
    end=$(now_us)
    rm -f "$out/slots/$i"
    pid=""
    if [ -z "$status" ]; then
      if ((rc == 0)); then
        status=completed
      elif [ -e "$dir.killed" ] && ((rc == 137)); then
        status=killed
      else
        status=failed
      fi
    fi
    rm -f "$dir/adapters.safetensors"  # 27 MB a run; results.json stays
    echo "$name,$i,$status,$rc,$(((start - t0_us) / 1000000)),$(((end - t0_us) / 1000000)),${dir##*/}" \
      >>"$out/runs/slot$i.csv"
    case "$status" in
      failed | hung) say "client $name $status (exit $rc): $(tail -1 "$dir.err")" ;;
    esac
  done
}
for ((i = 1; i <= clients; i++)); do
  : >"$out/runs/slot$i.csv"
  slot_loop "$i" 2>>"$out/slots.log" &  # bash's "Killed" notices go there
  slot_pids+=($!)
done

# --- the killer: every kill_every s, kill -9 a client that is training ---------------------------
training() {  # training <errfile>: past the held-out loss before step 1, not yet at the last one
  [ "$(grep -c 'held-out loss' "$1" 2>/dev/null)" = 1 ]
}
killer_loop() {
  trap 'exit 0' TERM
  local next_us=$((t0_us + kill_every * 1000000)) f pid name err candidates try
  while ((next_us < deadline_us)); do
    while (($(now_us) < next_us)); do sleep 0.5; done
    for ((try = 0; try < 20; try++)); do
      candidates=()
      for f in "$out"/slots/[0-9]*; do
        [ -f "$f" ] && read -r pid name err <"$f" && training "$err" && candidates+=("$pid $name $err")
      done
      ((${#candidates[@]})) && break
      sleep 0.5
    done
    if ((${#candidates[@]})); then
      read -r pid name err <<<"${candidates[RANDOM % ${#candidates[@]}]}"
      sleep "0.$((RANDOM % 10))"  # somewhere within a step
      if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "run.name=$name " &&
        training "$err"; then
        touch "${err%.err}.killed"
        kill -9 "$pid" 2>/dev/null && say "killed client $name (pid $pid) mid-run"
      fi
    fi
    next_us=$((next_us + kill_every * 1000000))
  done
}
if ((kill_every > 0)); then
  killer_loop &
  killer=$!
fi

# --- wait for the runs, then stop the server --------------------------------------------------
progress_every=30
next_report=$progress_every
while :; do
  busy=0
  for p in "${slot_pids[@]}"; do alive "$p" && busy=1; done
  ((busy)) || break
  [ -e "$out/server.gone" ] && [ -z "${gone_said:-}" ] && gone_said=1 && say "FAIL: the server is gone"
  t=$((($(now_us) - t0_us) / 1000000))
  if ((t >= next_report)); then
    last=$(tail -1 "$out/samples.csv")
    IFS=, read -r _ rss _ _ _ fds sess act _ <<<"$last"
    done_runs=$(cat "$out"/runs/slot*.csv | grep -c ',completed,')
    say "server RSS $((rss / 1024)) MB, $fds fds, $sess sessions; clients running $act; runs completed $done_runs"
    next_report=$((next_report + progress_every))
  fi
  sleep 1
done
for p in "${slot_pids[@]}"; do wait "$p" 2>/dev/null; done
slot_pids=()
if ((killer > 0)); then
  kill -TERM "$killer" 2>/dev/null
  wait "$killer" 2>/dev/null
  killer=0
fi
read -r load_end _ </proc/loadavg
say "all clients done; idle samples for 5 s"
sleep 5  # the server closes the last sessions; the sampler records it idle
kill -TERM "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
sampler=0
server_state=alive
alive "$server" || server_state=died
curl -s --max-time 10 "$metrics_url" >"$out/metrics.final.txt" 2>/dev/null
if ((malloc_stats)) && [ "$server_state" = alive ]; then
  before=$(rss_kb)
  malloc_probe end 'call (int)malloc_trim(0)'
  echo "rss_before_trim_kb $before" >"$out/malloc_trim.txt"
  echo "rss_after_trim_kb $(rss_kb)" >>"$out/malloc_trim.txt"
fi
server_rc=""
if [ "$server_state" = alive ]; then
  kill -TERM "$server"
  for ((i = 0; i < 300; i++)); do alive "$server" || break; sleep 0.2; done
  if alive "$server"; then
    server_state=hung_on_sigterm
    kill -9 "$server"
  fi
  wait "$server"
  server_rc=$?
else
  wait "$server"
  server_rc=$?
fi
server=0
say "server exited $server_rc"

# --- summary ----------------------------------------------------------------------------------
cat "$out"/runs/slot*.csv >"$out/runs.csv"
python3 - "$out" "$duration" "$threshold" "$fd_limit" "$server_state" "$server_rc" "$clients" \
  "$kill_every" "$steps" "${server_env[*]:-}" "$load_start" "${load_end:-?}" <<'EOF' | tee "$out/summary.txt"
import csv, json, os, re, statistics, sys

(out, duration, threshold, fd_limit, server_state, server_rc, clients, kill_every, steps, senv,
 load_start, load_end) = sys.argv[1:]
duration, threshold, fd_limit = int(duration), float(threshold), int(fd_limit)
failures = []

rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(f"{out}/samples.csv"))]
runs = list(csv.reader(open(f"{out}/runs.csv")))
by_status = {}
for r in runs:
    by_status.setdefault(r[2], []).append(r)
completed = by_status.get("completed", [])
steps_done = 0
for r in completed:  # runs/<dir>/results.json of each completed run
    p = f"{out}/runs/{r[6]}/results.json"
    try:
        steps_done += len(json.load(open(p))["clients"][0]["steps"])
    except Exception as e:
        failures.append(f"completed run {r[0]}: unreadable {p}: {e}")

def metric_sum(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total

mtext = open(f"{out}/metrics.final.txt").read() if os.path.exists(f"{out}/metrics.final.txt") else ""
grad_up = metric_sum(mtext, "gtune_wire_messages_total", kind="gradients_up")
act_up = metric_sum(mtext, "gtune_wire_messages_total", kind="activations_up")
bytes_total = metric_sum(mtext, "gtune_wire_bytes_total")
serr = open(f"{out}/server.err", errors="replace").read()
opened = len(re.findall(r"session \d+ opened", serr))
ended_down = len(re.findall(r"ended: client down", serr))
ended_bye = len(re.findall(r"ended: client said goodbye", serr))
bad_lines = [l for l in serr.splitlines() if re.search(r"\[error\]|terminate called|Segmentation|frame #", l)]

warm = min(0.2 * duration, 60.0)
win = min(60.0, (duration - warm) / 2)
during = [r for r in rows if r["t_s"] <= duration]
early = [r for r in during if warm <= r["t_s"] < warm + win]
late = [r for r in during if duration - win <= r["t_s"] <= duration]
idle_start = rows[0]
after = [r for r in rows if r["t_s"] > duration and r["clients_running"] == 0]
idle_end = after[-1] if after else rows[-1]
mb = lambda kb: kb / 1024.0
med = lambda rs, k: statistics.median(r[k] for r in rs) if rs else float("nan")

print(f"soak: {clients} client slots, {duration} s (+ drain), kill -9 every {kill_every} s, "
      f"{steps} steps a run; server env: {senv or '-'}")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:")), 0)
print(f"  machine           {len(os.sched_getaffinity(0))} CPUs ({cpu}), {mem / 2**20:.1f} GiB RAM; load average "
      f"{load_start} at the start, {load_end} at the end of the runs")
print(f"  output            {out}")
print(f"  binary            {open(f'{out}/binary.txt').read().strip()} (sha256 prefix, mtime, path)")
n = lambda s: len(by_status.get(s, []))
print(f"  runs              {len(runs)} started: {n('completed')} completed, {n('killed')} killed (kill -9), "
      f"{n('cut')} cut at the end, {n('failed')} failed, {n('hung')} hung")
print(f"  server sessions   {opened} opened; ended: {ended_bye} goodbye, {ended_down} client down; "
      f"max gtune_sessions {max(r['sessions'] for r in rows):.0f}, at the end {rows[-1]['sessions']:.0f}")
print(f"  steps served      {steps_done} in completed runs (results.json); server counted "
      f"{grad_up:.0f} gradients_up, {act_up:.0f} activations_up (eval forwards and killed runs included); "
      f"{bytes_total / 1e9:.2f} GB on the wire")
print(f"  samples           {len(rows)} every 2 s (MB = MiB); warm-up {warm:.0f} s; early window "
      f"[{warm:.0f}, {warm + win:.0f}) s, late window [{duration - win:.0f}, {duration}] s")
if not early or not late:
    failures.append("too few samples for the early/late windows")
e_rss, l_rss = med(early, "rss_kb"), med(late, "rss_kb")
growth = l_rss - e_rss
growth_pct = 100.0 * growth / e_rss if e_rss else float("nan")
end_warm = [r for r in rows if r["t_s"] <= warm][-1]
print(f"  RSS (MB)          idle at start {mb(idle_start['rss_kb']):.1f}; end of warm-up {mb(end_warm['rss_kb']):.1f}; "
      f"early median {mb(e_rss):.1f}; late median {mb(l_rss):.1f}; max {mb(max(r['rss_kb'] for r in during)):.1f}; "
      f"idle at the end {mb(idle_end['rss_kb']):.1f}")
print(f"  RSS growth        {mb(growth):+.1f} MB ({growth_pct:+.1f} %) after warm-up; limit {threshold:g} %")
print(f"  anon RSS (MB)     early median {mb(med(early, 'rss_anon_kb')):.1f}; late median {mb(med(late, 'rss_anon_kb')):.1f}; "
      f"file-backed {mb(med(late, 'rss_file_kb')):.1f}")
e_fd = max(r["fds"] for r in early) if early else 0
l_fd = max(r["fds"] for r in late) if late else 0
print(f"  fds               idle at start {idle_start['fds']:.0f}; max early {e_fd:.0f}, late {l_fd:.0f}, "
      f"overall {max(r['fds'] for r in rows):.0f}; idle at the end {idle_end['fds']:.0f}; limit +{fd_limit}")
print(f"  threads           start {idle_start['threads']:.0f}, max {max(r['threads'] for r in rows):.0f}, "
      f"end {idle_end['threads']:.0f}")
print(f"  /metrics size     {rows[1]['metrics_bytes'] if len(rows) > 1 else 0:.0f} B at start, "
      f"{idle_end['metrics_bytes']:.0f} B at the end")
def malloc_block(label):
    if f"--- malloc_stats {label} (soak)" not in serr:
        return None
    block = serr.split(f"--- malloc_stats {label} (soak)")[1].split(f"--- end malloc_stats {label}")[0]
    total = re.search(r"Total \(incl. mmap\):\s*system bytes\s*=\s*(\d+)\s*in use bytes\s*=\s*(\d+)", block)
    if not total:
        return None
    return len(re.findall(r"^Arena \d+:", block, re.M)), int(total[1]) / 2**20, int(total[2]) / 2**20

for label, when in (("start", "idle, before the first client"), ("end", "idle, after the last client")):
    m = malloc_block(label)
    if m:
        print(f"  glibc malloc      {when}: {m[0]} arenas, {m[1]:.1f} MB from the system, {m[2]:.1f} MB in use")
if os.path.exists(f"{out}/malloc_trim.txt"):
    trim = dict(l.split() for l in open(f"{out}/malloc_trim.txt") if len(l.split()) == 2)
    print(f"  malloc_trim(0)    idle at the end: RSS {mb(float(trim.get('rss_before_trim_kb', 0))):.1f} MB before, "
          f"{mb(float(trim.get('rss_after_trim_kb', 0))):.1f} MB after")
print("  RSS over time     t_s  RSS_MB  anon_MB  fds  sessions  clients")
next_t = 0.0
for r in rows:
    if r["t_s"] >= next_t or r is rows[-1]:
        print(f"                    {r['t_s']:4.0f}  {mb(r['rss_kb']):6.1f}  {mb(r['rss_anon_kb']):7.1f}  "
              f"{r['fds']:3.0f}  {r['sessions']:8.0f}  {r['clients_running']:7.0f}")
        next_t = (r["t_s"] // 30 + 1) * 30

if server_state != "alive":
    failures.append(f"the server {server_state.replace('_', ' ')} (exit {server_rc})")
elif server_rc != "0":
    failures.append(f"the server exited {server_rc} on SIGTERM (want 0)")
if "server: shutting down" not in serr:
    failures.append("the server did not log 'shutting down'")
if bad_lines:
    failures.append(f"the server logged errors: {bad_lines[:3]}")
for s in ("failed", "hung"):
    for r in by_status.get(s, []):
        failures.append(f"client {r[0]} {s} (exit {r[3]}; log {out}/runs/{r[6]}.err)")
if not completed:
    failures.append("no run completed")
if growth_pct > threshold:
    failures.append(f"RSS grew {growth_pct:.1f} % after warm-up (limit {threshold:g} %)")
if l_fd - e_fd > fd_limit or idle_end["fds"] - idle_start["fds"] > fd_limit:
    failures.append(f"fds grew by more than {fd_limit} (max early {e_fd:.0f} -> late {l_fd:.0f}; "
                    f"idle {idle_start['fds']:.0f} -> {idle_end['fds']:.0f})")
print("soak: " + ("FAIL\n  " + "\n  ".join(failures) if failures else "ok"))
sys.exit(1 if failures else 0)
EOF
