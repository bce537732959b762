"""Real parts for the operations tests: the production server (gunicorn, uvicorn
workers) as subprocesses on the test database, a real PgBouncer in transaction mode
in front of it, and a small Server-Sent Events reader."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from tests.concurrency import (
    GUNICORN,
    ROOT,
    RQ_WORKER,
    database_url_for_subprocess,
    free_port,
    serving,
)

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def get_json(url: str, **headers):
    """(status, JSON body, headers: case-insensitive, as HTTP names are)."""
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - 127.0.0.1 only
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


def post_json(url: str, body: dict, token: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        return response.status


def asgi_server(env_overrides: dict, *, workers: int = 1, log: Path | None = None):
    """``(context manager, base url)`` of gunicorn_asgi.conf.py on the test database."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocess(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DEBUG": "false",
        "WEB_CONCURRENCY": str(workers),
        "BIND": f"127.0.0.1:{port}",
        **env_overrides,
    }
    argv = [GUNICORN, "-c", "config/gunicorn_asgi.conf.py", "--log-level", "warning"]
    return serving(argv, port=port, env=env, log=log), f"http://127.0.0.1:{port}"


@contextmanager
def pgbouncer_in_front(*, pool_mode: str = "transaction"):
    """PgBouncer on a free port in front of the test database's server; yields its
    ``postgres://`` URL to the test database. Stopped (SIGTERM, bounded wait) and its
    folder removed at the end (a folder of its own: it runs as ``nobody`` as root)."""
    if not Path(PGBOUNCER).exists():
        pytest.skip("pgbouncer is not installed (bin/test installs Debian's package)")
    db = connection.settings_dict
    host = db["HOST"] or "127.0.0.1"
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="parley-pgbouncer-"))
    folder.chmod(0o777)
    (folder / "users.txt").write_text(f'"{db["USER"]}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={host} port={db["PORT"] or 5432}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = {pool_mode}
default_pool_size = 20
max_client_conn = 500
ignore_startup_parameters = extra_float_digits,options
logfile = {folder}/pgbouncer.log
"""
    )
    argv = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        argv = ["runuser", "-u", "nobody", "--", *argv]
    process = subprocess.Popen(argv, stderr=subprocess.PIPE)  # noqa: S603 - ours
    try:
        for _ in range(100):  # bounded wait for the port
            if process.poll() is not None:
                raise AssertionError(f"pgbouncer exited: {process.stderr.read()[-2000:]!r}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        yield f"postgres://{auth}@127.0.0.1:{port}/{db['NAME']}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


class EventStream:
    """One agent's ``/inbox/stream/``: reads ``changed`` events, bounded in time."""

    def __init__(self, base: str, cookie: str):
        import http.client

        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=20)
        self.conn.request("GET", "/inbox/stream/", headers={"Cookie": cookie})
        self.response = self.conn.getresponse()
        assert self.response.status == 200, self.response.status
        self.ids: set[int] = set()
        self.everything = False
        self._read_until(lambda event, data: event == "hello")

    def _read_until(self, done) -> None:
        event = ""
        while True:
            raw = self.response.readline()
            assert raw, "the stream closed"
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "changed":
                    self.ids.update(data.get("ids", ()))
                    self.everything |= bool(data.get("all"))
                if done(event, data):
                    return

    def wait_for(self, conversation_ids: set[int]) -> None:
        """Until every id has been announced (the socket timeout bounds each read)."""
        if not conversation_ids <= self.ids:
            self._read_until(lambda event, data: conversation_ids <= self.ids)

    def close(self) -> None:
        self.conn.close()


def session_cookie(client, user) -> str:
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


@contextmanager
def workers(count: int, logs: list, queue=None, **environ):
    """``count`` worker processes on the test database (JSON logs, kept in ``logs``;
    ``environ`` added to their environment): db_worker, or RQ workers when ``queue``
    is the ``redis_queue``; stopped at the end."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocess(),
        "DEBUG": "false",
        "LOG_FORMAT": "json",
        **(queue.env if queue else {}),
        **environ,
    }
    db_worker = [sys.executable, "manage.py", "db_worker", "--no-reload", "--interval", "0.2"]
    argv = RQ_WORKER if queue else db_worker
    processes = []
    try:
        for n in range(count):
            log = open(logs[n], "wb")  # noqa: SIM115 - closed below
            processes.append((subprocess.Popen(argv, cwd=ROOT, env=env, stderr=log), log))  # noqa: S603
        yield
    finally:
        for process, log in processes:
            process.terminate()
            process.wait(timeout=60)
            log.close()


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)  # a cheap query: polled often, the same limit
