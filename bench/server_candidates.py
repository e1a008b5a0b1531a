"""Which WSGI server for the one-process agent: what each adds to the agent's memory, and whether
it can serve the dashboard's WebSocket (issue 15; docs/ARCHITECTURE.md, "Why this server").

For each candidate, a fresh process imports what the agent imports (the agent, its Flask app,
flask-sock), notes its RSS, imports the server, notes the RSS again, then serves a small WSGI app
on loopback and asks it once which socket it hands the app: flask-sock's simple-websocket can
only take over a connection whose socket is in the WSGI environ as `werkzeug.socket` or
`gunicorn.socket` (or eventlet's/gevent's). gunicorn runs as the agent runs it
(`http_worker.serve_in_process`, no master). A candidate that is not installed is reported as
such (`pip install waitress cheroot` into the venv, or `--path DIR` for a `pip install --target DIR`).

    .venv/bin/python bench/server_candidates.py [--path DIR] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, signal, socket, sys, tempfile, threading, time, urllib.request
os.environ.update(DATA_DIR=tempfile.mkdtemp(), NODE_LOG_SOURCE="none")
import psutil
import monitor_agent.agent, monitor_agent.web, monitor_agent.config, flask_sock, simple_websocket  # noqa
proc = psutil.Process()
before = proc.memory_info().rss
name = sys.argv[1]

def app(environ, start_response):
    body = json.dumps(sorted(k for k in environ if k.endswith(".socket"))).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
result = {}

def ask():
    for _ in range(100):
        try:
            result["sockets"] = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read())
            return
        except OSError:
            time.sleep(0.05)

if name == "gunicorn":
    import gunicorn.workers.gthread, gunicorn.config, gunicorn.glogging  # noqa
    after = proc.memory_info().rss
    from monitor_agent.http_worker import InProcessWorker, serve_in_process
    def client():
        ask(); os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=client, daemon=True).start()
    serve_in_process(InProcessWorker, {"bind": [f"127.0.0.1:{port}"], "threads": 4, "loglevel": "warning"}, lambda: app)
else:
    if name == "werkzeug":
        from werkzeug.serving import make_server
        after = proc.memory_info().rss
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    elif name == "waitress":
        import waitress.server
        after = proc.memory_info().rss
        server = waitress.server.create_server(app, host="127.0.0.1", port=port, threads=4)
        threading.Thread(target=server.run, daemon=True).start()
    elif name == "cheroot":
        import cheroot.wsgi
        after = proc.memory_info().rss
        server = cheroot.wsgi.Server(("127.0.0.1", port), app, numthreads=4)
        threading.Thread(target=server.safe_start, daemon=True).start()
    ask()
print(json.dumps({"adds_mb": (after - before) / 1e6, "agent_mb": before / 1e6, **result}), flush=True)
os._exit(0)
"""

CANDIDATES = ("gunicorn", "werkzeug", "waitress", "cheroot")
WEBSOCKET_SOCKETS = {"werkzeug.socket", "gunicorn.socket"}


def run_one(name: str, extra_path: str | None) -> dict | str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), extra_path, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, name], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
        )
    if proc.returncode != 0 or not proc.stdout.strip():
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return "not installed" if "ModuleNotFoundError" in last else f"failed: {last}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", help="extra directory on PYTHONPATH holding waitress/cheroot")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for name in CANDIDATES:
        runs = [run_one(name, args.path) for _ in range(args.runs)]
        ok = [r for r in runs if isinstance(r, dict)]
        if not ok:
            print(f"{name:9s} {runs[0]}")
            continue
        adds = statistics.median(r["adds_mb"] for r in ok)
        base = statistics.median(r["agent_mb"] for r in ok)
        sockets = ok[0].get("sockets")
        ws = "yes" if sockets and set(sockets) & WEBSOCKET_SOCKETS else "no"
        print(
            f"{name:9s} adds {adds:4.1f} MB to the agent's {base:.1f} MB (median of {len(ok)}); "
            f"socket in environ: {sockets or 'none'} -> flask-sock WebSocket: {ws}"
        )


if __name__ == "__main__":
    main()
