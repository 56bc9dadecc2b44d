#!/usr/bin/env bash
# Shows every election member's view once a second: role, coordinator, term,
# clock offset and vector clock. Members default to the demo's; pass URLs to
# watch others. Ctrl-C stops it; PODIUM_STATUS_ROUNDS=N stops after N rounds.
set -euo pipefail
urls=("$@")
[ ${#urls[@]} -gt 0 ] || urls=(http://127.0.0.1:8000/ http://127.0.0.1:8002/ http://127.0.0.1:8003/)
exec python3 - "${PODIUM_STATUS_ROUNDS:-0}" "${urls[@]}" <<'PY'
import sys, time, xmlrpc.client
rounds, urls = int(sys.argv[1]), sys.argv[2:]
n = 0
while rounds == 0 or n < rounds:
    n += 1
    print(time.strftime("%H:%M:%S"), "-" * 60)
    print(f"{'member':28} {'uid':>3} {'role':12} {'coord':>5} {'term':>5} {'offset ms':>10}  vector clock")
    for url in urls:
        try:
            s = xmlrpc.client.ServerProxy(url).cluster.status()
            print(f"{url:28} {s['uid']:>3} {s['role']:12} {s['coordinator']:>5} {s['term']:>5} "
                  f"{s['offset_ms']:>10.3f}  {s['vector_clock']}")
        except Exception as e:
            print(f"{url:28}  unreachable: {e}")
    time.sleep(1)
PY
