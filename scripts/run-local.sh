#!/usr/bin/env bash
# Runs the whole Podium demo on this machine: the old system's seven
# processes with the new binaries.
#
#   db            :8000  (SQLite file scores.db, from scores.db.example)
#   front-end 1   :8002  pull mode (uid 1)
#   front-end 2   :8003  push mode (uid 2)
#   balancer      :8001
#   feeder        simulated games through the balancer
#   tablets       :8005 (push) and :8006 (push)
#
# The db and the front-ends form the election group: the highest live uid
# (front-end 2) coordinates and runs Berkeley clock sync. Watch it with
# scripts/cluster-status.sh; stop front-end 2 and front-end 1 takes over.
#
# In a terminal with tmux, each process gets a pane; Ctrl-C in the first
# pane stops them all. Otherwise they run in the background with logs in
# logs/NAME.log (each line prefixed), and Ctrl-C stops them all.
#
# The feeder password and cluster secret come from $PODIUM_FEEDER_PASSWORD
# and $PODIUM_CLUSTER_SECRET, or are generated for this run. They are handed
# to the processes in files (mode 600), never on a command line.
#
# Environment: PODIUM_NO_TMUX=1 forces the background mode;
# PODIUM_DEMO_SECONDS=N stops the demo after N seconds (for scripted runs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cargo build --release --bins
bin="$root/target/release"

mkdir -p logs
secrets="$root/logs/.secrets"
mkdir -p "$secrets"
chmod 700 "$secrets"
gen() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }
umask 077
printf '%s' "${PODIUM_FEEDER_PASSWORD:-$(gen)}" > "$secrets/feeder-password"
printf '%s' "${PODIUM_CLUSTER_SECRET:-$(gen)}" > "$secrets/cluster-secret"
umask 022
unset PODIUM_FEEDER_PASSWORD PODIUM_CLUSTER_SECRET
pw="--password-file $secrets/feeder-password"
cs="--cluster-secret-file $secrets/cluster-secret"

[ -f scores.db ] || cp scores.db.example scores.db

# The db and both front-ends form the election group (uids 0, 1, 2).
peers="--peer 0=127.0.0.1:8000 --peer 1=127.0.0.1:8002 --peer 2=127.0.0.1:8003"

names=(db frontend1 frontend2 balancer feeder tablet1 tablet2)
cmds=(
  "$bin/podium-db --port 8000 --db-file scores.db --uid 0 $peers $cs"
  "$bin/podium-frontend --uid 1 --port 8002 -c --db http://127.0.0.1:8000/ $peers $cs $pw"
  "$bin/podium-frontend --uid 2 --port 8003 --cache push --db http://127.0.0.1:8000/ $peers $cs $pw"
  "$bin/podium-balancer --port 8001 --frontend http://127.0.0.1:8002/ --frontend http://127.0.0.1:8003/ $cs"
  "$bin/podium-feeder --server http://127.0.0.1:8001/ $pw simulate --rate 1"
  "$bin/podium-tablet --server http://127.0.0.1:8001/ --mode push --port 8005"
  "$bin/podium-tablet --server http://127.0.0.1:8001/ --mode push --port 8006"
)

if [ -z "${PODIUM_NO_TMUX:-}" ] && command -v tmux >/dev/null 2>&1 && [ -t 0 ] && [ -t 1 ]; then
  session="podium-$$"
  control="echo 'Podium demo: Ctrl-C here stops every process.'; trap 'tmux kill-session -t $session' INT TERM; while sleep 3600; do :; done"
  tmux new-session -d -s "$session" -n demo "bash -c \"$control\""
  for i in "${!cmds[@]}"; do
    tmux split-window -t "$session:demo" "echo '== ${names[$i]} =='; ${cmds[$i]}; echo '${names[$i]} exited'; sleep 600"
    tmux select-layout -t "$session:demo" tiled >/dev/null
  done
  tmux select-pane -t "$session:demo.0"
  if [ -n "${PODIUM_DEMO_SECONDS:-}" ]; then
    (sleep "$PODIUM_DEMO_SECONDS"; tmux kill-session -t "$session" 2>/dev/null) &
  fi
  if [ -n "${TMUX:-}" ]; then
    exec tmux switch-client -t "$session"
  fi
  exec tmux attach -t "$session"
fi

pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping the demo..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped"
  exit 0
}
trap stop INT TERM EXIT
for i in "${!cmds[@]}"; do
  name=${names[$i]}
  # shellcheck disable=SC2086 # the command lines are word-split on purpose
  ${cmds[$i]} > >(sed -u "s/^/[$name] /" > "logs/$name.log") 2>&1 &
  pids+=($!)
  echo "started $name (pid $!), log: logs/$name.log"
done
echo "Demo running: balancer at http://127.0.0.1:8001/ . Try:"
echo "  python3 -c \"import xmlrpc.client as x; print(x.ServerProxy('http://127.0.0.1:8001').get_medal_tally('Gaul', 1))\""
echo "  tail -f logs/tablet1.log"
echo "  scripts/cluster-status.sh      # election, term, clock offsets, vector clocks"
echo "Ctrl-C stops every process."
if [ -n "${PODIUM_DEMO_SECONDS:-}" ]; then
  sleep "$PODIUM_DEMO_SECONDS"
  stop
fi
wait
