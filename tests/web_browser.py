"""Drives Debian's headless Chromium on the scoreboard page for
tests/web_browser.rs, with Playwright pointed at /usr/bin/chromium (never
a browser of Playwright's own).

    python3 tests/web_browser.py URL

It loads URL, prints `LIVE` once the page shows the board and says it is
live, then obeys one command per line on stdin, answering each on stdout:

    SCORE <event>\t<text>   wait (1 s at most) until the event shows <text>
    GOLD <team>\t<n>        wait (1 s at most) until the team has <n> gold
    RANK <team>\t<n>        the team's rank must be <n> (at once)
    NOTLIVE                 wait (10 s at most) until it says it is not live
    SHOT <path>\t<w>\t<h>   a screenshot at that viewport size
    QUIT

Each answer is `OK <ms>` (how long it took) or `FAIL <what the page shows>`.
"""

import sys

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying hosts this
# machine cannot reach; no sandbox, since tests may run as root.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
LOAD_TIMEOUT_MS = 60_000
CHANGE_TIMEOUT_MS = 1_000
NOT_LIVE_TIMEOUT_MS = 10_000


def say(line):
    print(line, flush=True)


def timed(page, script, arg, timeout_ms):
    start = page.evaluate("performance.now()")
    try:
        page.wait_for_function(script, arg=arg, timeout=timeout_ms, polling="raf")
    except Exception:  # a timeout: say what is there instead
        return None
    return page.evaluate("performance.now()") - start


def main():
    url = sys.argv[1]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url, timeout=LOAD_TIMEOUT_MS)
        page.wait_for_function(
            "document.body.dataset.live === 'true' && "
            "document.querySelectorAll('#medals tbody tr').length > 0",
            timeout=LOAD_TIMEOUT_MS,
        )
        say("LIVE")
        for line in sys.stdin:
            cmd, _, rest = line.rstrip("\n").partition(" ")
            args = rest.split("\t")
            if errors:
                say("FAIL script error: " + "; ".join(errors))
                continue
            if cmd == "SCORE":
                event, text = args
                ms = timed(
                    page,
                    "([e, t]) => { const li = document.querySelector("
                    "`#events li[data-event=\"${e}\"] .score`); return li && li.textContent === t; }",
                    [event.lower(), text],
                    CHANGE_TIMEOUT_MS,
                )
                shown = page.evaluate(
                    "(e) => { const li = document.querySelector(`#events li[data-event=\"${e}\"] .score`);"
                    " return li ? li.textContent : 'no row'; }",
                    event.lower(),
                )
                say(f"OK {ms:.0f}" if ms is not None else f"FAIL shows {shown!r}")
            elif cmd == "GOLD":
                team, n = args
                ms = timed(
                    page,
                    "([t, n]) => { const td = document.querySelector("
                    "`#medals tr[data-team=\"${t}\"] td.gold`); return td && td.textContent === n; }",
                    [team.lower(), n],
                    CHANGE_TIMEOUT_MS,
                )
                say(f"OK {ms:.0f}" if ms is not None else "FAIL gold count not shown")
            elif cmd == "RANK":
                team, n = args
                rank = page.evaluate(
                    "(t) => document.querySelector(`#medals tr[data-team=\"${t}\"] td.rank`).textContent",
                    team.lower(),
                )
                say("OK 0" if rank == n else f"FAIL rank {rank}")
            elif cmd == "NOTLIVE":
                ms = timed(
                    page,
                    "() => document.body.dataset.live === 'false' && "
                    "document.getElementById('live-text').textContent.startsWith('Reconnecting')",
                    None,
                    NOT_LIVE_TIMEOUT_MS,
                )
                say(f"OK {ms:.0f}" if ms is not None else "FAIL still says live")
            elif cmd == "SHOT":
                path, w, h = args
                page.set_viewport_size({"width": int(w), "height": int(h)})
                page.screenshot(path=path, full_page=True)
                say("OK 0")
            elif cmd == "QUIT":
                break
            else:
                say(f"FAIL unknown command {cmd!r}")
        browser.close()


if __name__ == "__main__":
    main()
