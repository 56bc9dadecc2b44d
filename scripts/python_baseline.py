#!/usr/bin/env python3
"""The old stack's read path, as a baseline for scripts/bench.sh.

A Python stdlib XML-RPC server (one thread per connection, HTTP/1.1
keep-alive) serving get_medal_tally(team, client_id) from an in-memory dict,
as the old ObelixServer served cache hits, in the same text format Podium
uses. Prints "LISTENING 127.0.0.1:PORT" once bound (use --port 0 for a free
port) and serves until SIGINT/SIGTERM.

It is deliberately the *best case* of the old stack: no balancer hop, no
database behind it, Nagle disabled so keep-alive replies are not held back
by delayed ACKs, no per-request logging.
"""

import argparse
import signal
import socketserver
import sys
import time
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

TEAMS = ["Gaul", "Rome", "Carthage", "Greece", "Persia"]


class Handler(SimpleXMLRPCRequestHandler):
    # Keep-alive: one connection carries many calls, as with Podium.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle and the
    # client's delayed ACK add ~40 ms to every keep-alive reply.
    disable_nagle_algorithm = True
    rpc_paths = ("/", "/RPC2")


class Server(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True
    # The default backlog of 5 drops SYNs when 64 clients connect at once.
    request_queue_size = 1024
    allow_reuse_address = True


def format_time(secs):
    if secs <= 0:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(secs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--nagle",
        action="store_true",
        help="keep Nagle's algorithm on, as the stdlib default does",
    )
    args = parser.parse_args()
    Handler.disable_nagle_algorithm = not args.nagle

    now = time.time()
    tallies = {t.lower(): (t, 3, 2, 1, now) for t in TEAMS}

    def get_medal_tally(team, client_id=0):
        entry = tallies.get(str(team).lower())
        if entry is None:
            raise ValueError("unknown team %r" % (team,))
        name, gold, silver, bronze, updated = entry
        return "Team %s has:\n%d gold medals\n%d silver medals\n%d bronze medals\nas of %s\n" % (
            name,
            gold,
            silver,
            bronze,
            format_time(updated),
        )

    server = Server(
        (args.host, args.port),
        requestHandler=Handler,
        logRequests=False,
        allow_none=True,
    )
    server.register_function(get_medal_tally, "get_medal_tally")
    server.register_introspection_functions()

    def stop(signum, frame):
        # shutdown() waits for serve_forever, which runs in this thread.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    host, port = server.server_address[:2]
    print("LISTENING %s:%d" % (host, port), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
