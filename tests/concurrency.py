"""Run callables in real threads, released at the same moment, each with its own
database connection (so each runs its own transactions); and our own servers as
subprocesses on the test database."""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.db import close_old_connections, connection


def run_together(functions, *, timeout: float = 60):
    barrier = threading.Barrier(len(functions))
    results, errors = [None] * len(functions), [None] * len(functions)

    def worker(index, function):
        try:
            barrier.wait(timeout=30)
            results[index] = function()
        except BaseException as exc:  # noqa: BLE001 — handed back to the test
            errors[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    close_old_connections()
    return results, errors


def database_url_for_subprocess() -> str:
    """``DATABASE_URL`` pointed at the test database: a subprocess (gunicorn, a
    worker) must reach the very database the test writes, so everything of the
    original URL is kept (a ``?host=`` socket folder above all), only the name
    changes."""
    name = connection.settings_dict["NAME"]
    url = os.environ.get("DATABASE_URL", "")
    if url:
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path=f"/{name}"))
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{name}"


ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(argv: list[str], *, port: int, env: dict, log: Path | None = None):
    """Our own server (``argv``, run from the repository root with ``env``) until the
    block ends; waits, bounded, until ``port`` accepts connections."""
    with open(log, "wb") if log else open(os.devnull, "wb") as stderr:
        server = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=stderr)  # noqa: S603 - ours
    try:
        for _ in range(300):  # a bounded wait for the socket, not a timing
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                tail = log.read_text()[-2000:] if log else ""
                assert server.poll() is None, f"{argv[0]} exited: {tail}"
                time.sleep(0.1)
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
# A worker on the Redis queue (with ``redis_queue.env``): django-rq's command with our
# worker class (settings.RQ), which also queues the delayed tasks that are due.
RQ_WORKER = [sys.executable, "manage.py", "rqworker", "default"]


@contextmanager
def redis_server(folder: Path):
    """A private Redis on a free 127.0.0.1 port, keeping nothing on disk (no snapshot,
    no append-only file), until the block ends; yields its URL."""
    port = free_port()
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(folder), "--logfile", str(folder / "redis.log")]
    with serving(argv, port=port, env=dict(os.environ)):
        yield f"redis://127.0.0.1:{port}/0"
