#!/usr/bin/env bash
# Runs the whole Podium demo on this machine: the old system's seven
# processes with the new binaries.
#
#   db            :8000  uid 0, SQLite file scores.db (a copy of scores.db.example)
#   frontend1     :8002  uid 1, pull mode
#   frontend2     :8003  uid 2, push mode
#   balancer      :8001
#   feeder               simulated games through the balancer
#   tablet1/2     :8005, :8006  push mode
#
# Usage:
#   scripts/run-local.sh              build (release), start all seven, and stay
#                                     until Ctrl-C (or SIGTERM), which stops them all
#   scripts/run-local.sh stop WHO     stop one: a uid (0, 1, 2) or a name above
#   scripts/run-local.sh start WHO    start it again, with the same flags
#   scripts/run-local.sh stop         stop the whole demo (from another terminal)
#   scripts/run-local.sh status       what runs, with pids
#
# Every process logs to logs/NAME.log (kept after the demo) and runs in a
# session of its own, so only this script stops it: with SIGTERM (a clean
# shutdown), then SIGKILL if it is still there after 10 s. If anything fails
# to start, everything started is stopped. A process is only ever signalled
# through the pid file this script wrote, after checking that the pid is
# still that program.
#
# In a terminal with tmux, a tmux window (inside tmux) or session (outside)
# shows every log, one pane each; its first pane stops the demo on Ctrl-C.
# Leaving tmux leaves the demo running; Ctrl-C where this script runs, or
# `scripts/run-local.sh stop`, stops it.
#
# The feeder password and cluster secret come from $PODIUM_FEEDER_PASSWORD
# and $PODIUM_CLUSTER_SECRET, or are generated for this run. They are handed
# to the processes in files (mode 600, logs/.secrets/), never on a command line.
#
# Environment: PODIUM_NO_TMUX=1 never uses tmux; PODIUM_DEMO_SECONDS=N stops
# the demo after N seconds (for scripted runs: it opens no tmux session to
# attach, only a window when already inside tmux); PODIUM_BIN_DIR=DIR uses the
# binaries in DIR and builds nothing; PODIUM_DEMO_DIR=DIR keeps logs/ and
# scores.db in DIR instead of the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state=${PODIUM_DEMO_DIR:-$root}
logs=$state/logs
pids=$logs/run
secrets=$logs/.secrets
bin=${PODIUM_BIN_DIR:-$root/target/release}
# Seconds a process gets to stop after SIGTERM, and to start listening.
stop_timeout=10
start_timeout=20

names=(db frontend1 frontend2 balancer feeder tablet1 tablet2)

say() { printf '%s\n' "$*"; }
die() { printf 'run-local.sh: %s\n' "$*" >&2; exit 1; }

# The name of a member given by uid or name.
member() {
  case $1 in
    0) echo db ;;
    1) echo frontend1 ;;
    2) echo frontend2 ;;
    db|frontend1|frontend2|balancer|feeder|tablet1|tablet2) echo "$1" ;;
    *) die "no member '$1': give a uid (0, 1, 2) or one of: ${names[*]}" ;;
  esac
}

# Sets cmd to the command line of member $1.
command_of() {
  local cs=(--cluster-secret-file "$secrets/cluster-secret")
  local pw=(--password-file "$secrets/feeder-password")
  # The db and both front-ends form the election group (uids 0, 1, 2).
  local peers=(--peer 0=127.0.0.1:8000 --peer 1=127.0.0.1:8002 --peer 2=127.0.0.1:8003)
  local server=(--server http://127.0.0.1:8001/)
  case $1 in
    db) cmd=("$bin/podium-db" --port 8000 --db-file "$state/scores.db" --uid 0 "${peers[@]}" "${cs[@]}") ;;
    frontend1) cmd=("$bin/podium-frontend" --uid 1 --port 8002 -c --db http://127.0.0.1:8000/ "${peers[@]}" "${cs[@]}" "${pw[@]}") ;;
    frontend2) cmd=("$bin/podium-frontend" --uid 2 --port 8003 --cache push --db http://127.0.0.1:8000/ "${peers[@]}" "${cs[@]}" "${pw[@]}") ;;
    balancer) cmd=("$bin/podium-balancer" --port 8001 --frontend http://127.0.0.1:8002/ --frontend http://127.0.0.1:8003/ "${cs[@]}") ;;
    feeder) cmd=("$bin/podium-feeder" simulate --rate 1 "${server[@]}" "${pw[@]}") ;;
    tablet1) cmd=("$bin/podium-tablet" "${server[@]}" --mode push --port 8005) ;;
    tablet2) cmd=("$bin/podium-tablet" "${server[@]}" --mode push --port 8006) ;;
  esac
}

# The pid of member $1 if it runs (its pid file names a live process whose
# program is still the member's binary), else nothing.
pid_of() {
  local file=$pids/$1.pid pid cmd program=
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  command_of "$1"
  [ -r "/proc/$pid/cmdline" ] && IFS= read -r -d '' program < "/proc/$pid/cmdline" || true
  if [ "$program" = "${cmd[0]}" ]; then echo "$pid"; fi
}

# Starts member $1 and waits until it listens (the feeder: until it runs).
start_one() {
  local name=$1 pid cmd log=$logs/$1.log lines i
  pid=$(pid_of "$name")
  if [ -n "$pid" ]; then say "$name already runs (pid $pid)"; return 0; fi
  [ -f "$secrets/cluster-secret" ] || die "no demo secrets in $secrets: run scripts/run-local.sh first"
  command_of "$name"
  [ -x "${cmd[0]}" ] || die "${cmd[0]} not found: build with cargo build --release"
  touch "$log"
  lines=$(wc -l < "$log")
  setsid "${cmd[@]}" >> "$log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$pids/$name.pid"
  for ((i = 0; i < start_timeout * 10; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pids/$name.pid"
      tail -n "+$((lines + 1))" "$log" | grep ': error:' >&2 || tail -n 3 "$log" >&2
      die "$name exited at start (pid $pid); see $log"
    fi
    if [ "$name" = feeder ] || tail -n "+$((lines + 1))" "$log" | grep -c '^LISTENING ' > /dev/null; then
      say "started $name (pid $pid), log: $log"
      return 0
    fi
    sleep 0.1
  done
  stop_one "$name"
  die "$name did not start listening within ${start_timeout}s; see $log"
}

# Stops member $1: SIGTERM, then SIGKILL after stop_timeout seconds.
stop_one() {
  local name=$1 pid i
  pid=$(pid_of "$name")
  if [ -z "$pid" ]; then rm -f "$pids/$name.pid"; say "$name is not running"; return 0; fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < stop_timeout * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    say "$name (pid $pid) ignored SIGTERM for ${stop_timeout}s: killed"
  else
    say "stopped $name (pid $pid)"
  fi
  rm -f "$pids/$name.pid"
}

# Stops every member, clients first and the db last.
stop_all() {
  local i
  for ((i = ${#names[@]} - 1; i >= 0; i--)); do stop_one "${names[$i]}"; done
}

# The tmux viewer (a session or a window id) recorded by the demo, if any.
close_viewer() {
  [ -f "$pids/tmux" ] || return 0
  local target kind
  read -r kind target < "$pids/tmux" || true
  rm -f "$pids/tmux"
  case $kind in
    session) tmux kill-session -t "$target" 2>/dev/null || true ;;
    window) tmux kill-window -t "$target" 2>/dev/null || true ;;
  esac
}

supervisor_pid() {
  local pid args=
  [ -f "$pids/demo.pid" ] || return 0
  pid=$(cat "$pids/demo.pid")
  [ -r "/proc/$pid/cmdline" ] && args=$(tr '\0' ' ' < "/proc/$pid/cmdline") || true
  case $args in *run-local.sh*) echo "$pid" ;; esac
}

status() {
  local name pid
  for name in "${names[@]}"; do
    pid=$(pid_of "$name")
    if [ -n "$pid" ]; then say "$name: running (pid $pid)"; else say "$name: stopped"; fi
  done
}

# Opens the tmux viewer: one pane per log, the first pane stops the demo on
# Ctrl-C. Sets viewer_session when it made a session to attach to.
open_viewer() {
  local stop_cmd first pane name target
  stop_cmd=$(printf 'PODIUM_DEMO_DIR=%q PODIUM_BIN_DIR=%q %q stop' "$state" "$bin" "$root/scripts/run-local.sh")
  first="trap $(printf '%q' "$stop_cmd") INT; echo 'Podium demo: Ctrl-C here stops every process.'; while sleep 3600; do :; done"
  if [ -n "${TMUX:-}" ]; then
    target=$(tmux new-window -d -P -F '#{window_id}' -n podium-demo "bash -c $(printf '%q' "$first")")
    echo "window $target" > "$pids/tmux"
    say "logs: tmux window 'podium-demo' ($target) of this session"
  else
    viewer_session=podium-demo-$$
    tmux new-session -d -s "$viewer_session" -n logs -x 200 -y 50 "bash -c $(printf '%q' "$first")"
    target=$viewer_session:logs
    echo "session $viewer_session" > "$pids/tmux"
  fi
  for name in "${names[@]}"; do
    pane="echo '== $name: $logs/$name.log =='; exec tail -n +1 -F $(printf '%q' "$logs/$name.log")"
    tmux split-window -t "$target" "bash -c $(printf '%q' "$pane")"
    tmux select-layout -t "$target" tiled > /dev/null
  done
}

run_demo() {
  mkdir -p "$logs" "$pids" "$secrets"
  chmod 700 "$secrets"
  [ -z "$(supervisor_pid)" ] || die "a demo already runs here (pid $(supervisor_pid)); scripts/run-local.sh stop ends it"
  for name in "${names[@]}"; do
    [ -z "$(pid_of "$name")" ] || die "$name already runs (pid $(pid_of "$name")); scripts/run-local.sh stop ends it"
  done
  if [ -z "${PODIUM_BIN_DIR:-}" ]; then
    cargo build --release --bins
  fi

  gen() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }
  (umask 077
   printf '%s' "${PODIUM_FEEDER_PASSWORD:-$(gen)}" > "$secrets/feeder-password"
   printf '%s' "${PODIUM_CLUSTER_SECRET:-$(gen)}" > "$secrets/cluster-secret")
  unset PODIUM_FEEDER_PASSWORD PODIUM_CLUSTER_SECRET
  [ -f "$state/scores.db" ] || cp "$root/scores.db.example" "$state/scores.db"

  echo $$ > "$pids/demo.pid"
  sleeper=
  viewer_session=
  cleanup() {
    trap - EXIT INT TERM HUP
    [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null || true
    say "stopping the demo..."
    close_viewer
    stop_all
    rm -f "$pids/demo.pid"
    say "stopped; logs are in $logs"
  }
  # A stop asked for (Ctrl-C, SIGTERM, the terminal gone) is a clean end.
  trap cleanup EXIT
  trap 'exit 0' INT TERM HUP

  for name in "${names[@]}"; do start_one "$name"; done
  say "Demo running: balancer at http://127.0.0.1:8001/ . Try:"
  say "  python3 -c \"import xmlrpc.client as x; print(x.ServerProxy('http://127.0.0.1:8001').get_medal_tally('Gaul', 1))\""
  say "  tail -f $logs/tablet1.log"
  say "  scripts/cluster-status.sh        # election, term, clock offsets, vector clocks"
  say "  scripts/run-local.sh stop 2      # stop front-end uid 2 (the coordinator); start 2 brings it back"
  say "Ctrl-C here stops every process."

  if [ -z "${PODIUM_NO_TMUX:-}" ] && command -v tmux > /dev/null 2>&1 && [ -t 0 ] && [ -t 1 ]; then
    # A timed run never attaches: it is for scripts, and an attach would
    # hold off the signals that end the run.
    if [ -n "${TMUX:-}" ] || [ -z "${PODIUM_DEMO_SECONDS:-}" ]; then open_viewer; fi
    if [ -n "$viewer_session" ]; then
      tmux attach -t "$viewer_session" || true
      say "left tmux; the demo still runs. Ctrl-C here or scripts/run-local.sh stop ends it."
    fi
  fi
  if [ -n "${PODIUM_DEMO_SECONDS:-}" ]; then
    sleep "$PODIUM_DEMO_SECONDS" &
    sleeper=$!
    wait "$sleeper" || true
    exit 0
  fi
  while :; do
    sleep 3600 &
    sleeper=$!
    wait "$sleeper" || true
  done
}

case ${1:-run} in
  run) run_demo ;;
  start)
    [ $# -eq 2 ] || die "usage: scripts/run-local.sh start WHO (a uid 0-2 or a name: ${names[*]})"
    who=$(member "$2")
    mkdir -p "$logs" "$pids"
    start_one "$who" ;;
  stop)
    if [ $# -eq 2 ]; then who=$(member "$2"); stop_one "$who"; exit 0; fi
    [ $# -eq 1 ] || die "usage: scripts/run-local.sh stop [WHO]"
    # The members first, then the script that runs the demo; the viewer
    # last, since this may run in one of its panes.
    stop_all
    sup=$(supervisor_pid)
    if [ -n "$sup" ]; then kill -TERM "$sup" 2>/dev/null || true; fi
    close_viewer ;;
  status) status ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (run, start WHO, stop [WHO], status, help)" ;;
esac
