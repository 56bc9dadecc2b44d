#!/usr/bin/env bash
# Shows every election member's view once a second: its state (member,
# candidate, coordinator), the coordinator it follows ("electing" while it
# knows none), term, clock offset and vector clock.
#
#   scripts/cluster-status.sh                      # the demo's members (8000, 8002, 8003)
#   scripts/cluster-status.sh 10.0.0.5:8000 http://10.0.0.6:8002/ ...
#
# Ctrl-C stops it; PODIUM_STATUS_ROUNDS=N stops after N rounds.
set -euo pipefail
members=("$@")
[ ${#members[@]} -gt 0 ] || members=(127.0.0.1:8000 127.0.0.1:8002 127.0.0.1:8003)
exec python3 - "${PODIUM_STATUS_ROUNDS:-0}" "${members[@]}" <<'PY'
import socket, sys, time, xmlrpc.client
socket.setdefaulttimeout(2)
rounds = int(sys.argv[1])
urls = [m if "://" in m else f"http://{m}/" for m in sys.argv[2:]]
n = 0
while rounds == 0 or n < rounds:
    n += 1
    print(time.strftime("%H:%M:%S"), "-" * 60)
    print(f"{'member':28} {'uid':>3} {'state':12} {'coordinator':>11} {'term':>5} {'offset ms':>10}  vector clock")
    for url in urls:
        try:
            s = xmlrpc.client.ServerProxy(url).cluster.status()
            coord = "electing" if s["coordinator"] < 0 else s["coordinator"]
            print(f"{url:28} {s['uid']:>3} {s.get('state', s['role']):12} {coord:>11} {s['term']:>5} "
                  f"{s['offset_ms']:>10.3f}  {s['vector_clock']}")
        except Exception as e:
            print(f"{url:28}  unreachable: {e}")
    sys.stdout.flush()
    if rounds == 0 or n < rounds:
        time.sleep(1)
PY
