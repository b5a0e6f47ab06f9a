# The hello app for Gunicorn (sync workers): / answers at once, /slow after 20 ms.
# Like bench/app.mjs, it writes its request count to BENCH_STATS_DIR/<pid>.json (at most
# every 100 ms; the last 100 ms of a run may be missing from the count).
import json
import os
import time

STATS_DIR = os.environ.get("BENCH_STATS_DIR")
counts = {"pid": 0, "requests": 0, "connections": 0}
last_write = 0.0


def count(environ):
    global last_write
    counts["pid"] = os.getpid()
    counts["requests"] += 1
    counts["connections"] += 1  # sync workers close the connection after every response
    now = time.monotonic()
    if now - last_write >= 0.1:
        last_write = now
        with open(os.path.join(STATS_DIR, "%d.json" % os.getpid()), "w") as f:
            json.dump(counts, f)


def app(environ, start_response):
    if STATS_DIR:
        count(environ)
    if environ.get("PATH_INFO") == "/slow":
        time.sleep(0.02)
    body = b"hello world\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
