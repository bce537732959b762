"""Load test: the app under gunicorn on 127.0.0.1 with simulated agents and a
stream of inbound messages, then a check that no message was lost.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/parley_load bench/load
    bench/load --agents 50 --rate 200 --seconds 60

Everything stays on the loopback interface, every loop is bounded in count and
time, and the script stops gunicorn itself. Prints errors (must be 0), latency
percentiles per kind of request, and whether every message sent is stored.
"""

import argparse
import http.client
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PASSWORD = "load-test-password"  # noqa: S105 — throwaway users in a throwaway database
HOST = "127.0.0.1"  # where the clients connect (bench/cluster: the load balancer)


def setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "load-test-only")
    import django

    django.setup()


def prepare(agent_count: int):
    """Migrate, make agents and an API token, and a few conversations to open."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from connectors.tokens import token_create
    from conversations import services
    from conversations.models import Conversation

    call_command("migrate", verbosity=0)
    User = get_user_model()
    agents = []
    for i in range(agent_count):
        user, _ = User.objects.get_or_create(username=f"load-agent-{i}")
        user.set_password(PASSWORD)
        user.save()
        agents.append(user.username)
    api_user, _ = User.objects.get_or_create(username="load-api")
    _, token = token_create(user=api_user, name="bench/load")
    while Conversation.objects.open().count() < 200:
        services.message_receive(
            channel="web", external_id=f"load-seed-{uuid.uuid4().hex[:10]}", text="Need help"
        )
    # Planner statistics for what was just made, as autovacuum would gather them on a
    # live database (a freshly grown table estimated at one row picked a plan that read
    # every open conversation: the list's SQL 4.0 -> 1.6 ms once analyzed).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return agents, token


def session_cookie(user) -> str:
    """A logged-in session for ``user``, made directly (``name=value`` for a Cookie
    header): logging many agents in through the password hasher at once would
    measure the hasher, not the inbox."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    from inbox.sessions import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[-1]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (Linux)."""
    total = 0.0
    for task in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in found]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(port: int, workers: int, threads: int, asgi: bool = False) -> subprocess.Popen:
    env = os.environ | {
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "STATIC_NO_MANIFEST": "true",
        "DATABASE_POOL_MAX": str(threads + 2),
    }
    if asgi:  # the production server: config/gunicorn_asgi.conf.py (bin/run's)
        env |= {"BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers)}
        env.pop("DATABASE_POOL_MAX")
        argv = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn_asgi.conf.py"]
        process = subprocess.Popen(argv + ["--log-level", "warning"], cwd=ROOT, env=env)  # noqa: S603
        return listening(process, port)
    process = subprocess.Popen(  # noqa: S603 — our own gunicorn, loopback only
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--log-level",
            "warning",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env=env,
    )
    return listening(process, port)


def listening(process: subprocess.Popen, port: int) -> subprocess.Popen:
    """``process`` once ``port`` accepts connections (30 s at most, else it is killed)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = defaultdict(list)
        self.errors = defaultdict(int)
        self.retried = defaultdict(int)  # 429 + Retry-After, sent again (not errors)
        self.error_samples = []
        self.last_inbound = 0.0  # when the last inbound message was acknowledged

    def record(self, kind: str, seconds: float, ok: bool, detail: str = ""):
        with self.lock:
            self.latency[kind].append(seconds)
            if not ok:
                self.errors[kind] += 1
                if len(self.error_samples) < 10:
                    self.error_samples.append(f"{kind}: {detail}")


class Client:
    """A tiny HTTP client with cookies and a persistent connection."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.conn = None
        self.resent = 0

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                self.resent += 1  # a kept-alive connection that died: sent once more
        self.headers = dict(response.getheaders())
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return response.status, data.decode("utf-8", "replace")


CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
PANE_RE = re.compile(r"/inbox/c/(\d+)/")


def agent_loop(
    username, port, stats, stop_at, think, cookie="", full_pages=False, pace="busy", work=10.0
):
    try:
        _agent_steps(username, port, stats, stop_at, think, cookie, full_pages, pace, work)
    except Exception as exc:  # noqa: BLE001 — counted as an error
        stats.record("agent", 0, False, f"{username}: {exc!r}")


# What the inbox page's htmx asks for (templates/inbox/inbox.html, rows.html): the list
# refreshing itself, and a row opening its conversation in the pane.
LIST_REFRESH = {
    "HX-Request": "true",
    "HX-Target": "conversation-list",
    "HX-Trigger": "conversation-list",
}
PANE_OPEN = {"HX-Request": "true", "HX-Target": "conversation-pane"}
PACES = ("busy", "desk")


def _agent_steps(
    username, port, stats, stop_at, think, cookie="", full_pages=False, pace="busy", work=10.0
):
    """An agent's steps, logged in with the password or, given a session ``cookie``,
    already logged in (bench/cluster: not measuring the password hasher). The agent
    opens the inbox (a full page, at a random moment of its first pause), then every
    ``think`` seconds its list refreshes itself as the page does (an htmx partial: under
    a steady inbound stream, server push refreshes it about once a second). ``pace``:

    - "busy": at every step the agent also opens the next conversation in the pane, and
      replies every third step (a conversation a second, a reply every 3 s: more than a
      person can read and type; the shape of the earlier measurements);
    - "desk": the agent works one conversation at a time: opens it, spends ``work``
      seconds on it while the list keeps refreshing, replies, and opens the next.

    ``full_pages``: every list and pane as a full page load (the heavier old shape)."""
    client = Client(port)
    if cookie:
        name, _, value = cookie.partition("=")
        client.cookies[name] = value
    elif not _log_in(client, username, port, stats):
        return

    def reply(pk, token, n):
        started = time.monotonic()
        body = urllib.parse.urlencode(
            {"text": f"load reply {username} {n}", "csrfmiddlewaretoken": token}
        )
        status, _ = client.request(
            "POST",
            f"/inbox/c/{pk}/reply/",
            body,
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://{HOST}:{port}/inbox/c/{pk}/",
                "HX-Request": "true",
            },
        )
        # A closed conversation refuses politely (200 with a message): not an error.
        stats.record("reply", time.monotonic() - started, status == 200, f"{status}")

    # Agents do not all click in the same instant: each starts somewhere in its first
    # pause, with the inbox page open (timed as "inbox open", apart from the list).
    time.sleep(random.uniform(0, think))  # noqa: S311 - a load pattern, not a secret
    started = time.monotonic()
    status, page = client.request("GET", "/inbox/")
    stats.record("inbox open", time.monotonic() - started, status == 200, f"{status}")
    n, working_on, token = 0, None, None
    # "desk": each agent is somewhere in its first conversation's work at the start.
    next_conversation = time.monotonic() + (random.uniform(0, work) if pace == "desk" else 0)  # noqa: S311
    while time.monotonic() < stop_at:
        started = time.monotonic()
        headers = None if full_pages else LIST_REFRESH
        status, page = client.request("GET", "/inbox/", None, headers)
        stats.record("inbox list", time.monotonic() - started, status == 200, f"{status}")
        ids = PANE_RE.findall(page)
        if ids and time.monotonic() >= next_conversation:
            if pace == "desk" and working_on and token:
                reply(working_on, token, n)
            working_on = ids[n % len(ids)]
            started = time.monotonic()
            status, pane = client.request(
                "GET", f"/inbox/c/{working_on}/", None, None if full_pages else PANE_OPEN
            )
            stats.record("pane", time.monotonic() - started, status == 200, f"{status}")
            match = CSRF_RE.search(pane)
            token = match.group(1) if match else None
            if pace == "busy" and token and n % 3 == 0:
                reply(working_on, token, n)
            n += 1
            if pace == "desk":
                next_conversation = time.monotonic() + work
        time.sleep(think)


def _log_in(client, username, port, stats) -> bool:
    status, page = client.request("GET", "/login/")
    token = CSRF_RE.search(page).group(1)
    form = urllib.parse.urlencode(
        {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    status, _ = client.request(
        "POST",
        "/login/",
        form,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": f"http://{HOST}:{port}/login/",
        },
    )
    if status != 302:
        stats.record("login", 0, False, f"status {status}")
    return status == 302


def inbound_loop(port, token, stats, schedule, sent, sent_lock):
    """Send the inbound messages whose time in ``schedule`` has come."""
    client = Client(port)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    while True:
        with sent_lock:
            if not schedule:
                return
            due, external_id, text = schedule.pop()
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        body = json.dumps({"channel": "whatsapp", "external_id": external_id, "text": text})
        started = time.monotonic()
        try:
            for _ in range(6):  # a client that honours 429 + Retry-After, bounded
                status, data = client.request("POST", "/api/v1/messages/inbound", body, headers)
                if status != 429:
                    break
                with stats.lock:
                    stats.retried["inbound"] += 1
                time.sleep(float(client.headers.get("Retry-After", "1")))
        except Exception as exc:  # noqa: BLE001 — counted as an error
            stats.record("inbound", time.monotonic() - started, False, repr(exc))
            continue
        ok = status == 201
        stats.record("inbound", time.monotonic() - started, ok, f"{status} {data[:120]}")
        if ok:
            with sent_lock:
                sent.append(text)
                stats.last_inbound = max(stats.last_inbound, time.monotonic())


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--rate", type=int, default=200, help="inbound messages per second")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--contacts", type=int, default=2000, help="distinct senders")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--think", type=float, default=1.0, help="agent pause between steps")
    parser.add_argument(
        "--senders",
        type=int,
        default=48,
        help="inbound messages in flight at most (a channel's webhooks arrive concurrently; "
        "24 capped the rate at 24 / latency)",
    )
    parser.add_argument(
        "--pace",
        choices=PACES,
        default="busy",
        help="busy: a conversation opened every step, a reply every third; desk: one "
        "conversation at a time, --work seconds each, then a reply (the list refreshing "
        "every step either way)",
    )
    parser.add_argument(
        "--work", type=float, default=10.0, help="desk pace: seconds spent on a conversation"
    )
    parser.add_argument(
        "--asgi", action="store_true", help="the production server (gunicorn_asgi.conf.py)"
    )
    parser.add_argument(
        "--full-pages",
        action="store_true",
        help="agents load every list and pane as a full page (default: as the inbox page "
        "does, htmx partials after the first page)",
    )
    parser.add_argument(
        "--login",
        action="store_true",
        help="agents log in through the form during the load (default: logged in before it, "
        "as at the start of a day; 50 password hashes at once cost ~20 s of one core)",
    )
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("bench/load needs DATABASE_URL pointing at a PostgreSQL database.")
    if args.seconds > 600 or args.rate > 2000 or args.agents > 500:
        raise SystemExit("bounded: at most 600 s, 2000 messages/s, 500 agents")

    sys.path.insert(0, str(ROOT / "bench"))
    from seed import ensure_database  # the seeder's own helper

    ensure_database(os.environ["DATABASE_URL"])
    setup_django()
    agents, token = prepare(args.agents)
    from conversations.models import Message

    port = free_port()
    server = start_gunicorn(port, args.workers, args.threads, args.asgi)
    stats = Stats()
    total = args.rate * args.seconds
    run_id = uuid.uuid4().hex[:8]
    start = time.monotonic() + 2
    schedule = [
        (start + i / args.rate, f"+31 6 load {i % args.contacts:05d}", f"load {run_id} #{i}")
        for i in range(total)
    ]
    schedule.reverse()  # pop() takes the earliest
    sent, sent_lock = [], threading.Lock()
    stop_at = start + args.seconds
    if args.login:
        cookies = [""] * len(agents)
    else:
        from django.contrib.auth import get_user_model

        users = get_user_model().objects.in_bulk(agents, field_name="username")
        cookies = [session_cookie(users[name]) for name in agents]
    threads = [
        threading.Thread(
            target=agent_loop,
            args=(
                name,
                port,
                stats,
                stop_at,
                args.think,
                cookie,
                args.full_pages,
                args.pace,
                args.work,
            ),
        )
        for name, cookie in zip(agents, cookies, strict=True)
    ] + [
        threading.Thread(target=inbound_loop, args=(port, token, stats, schedule, sent, sent_lock))
        for _ in range(args.senders)
    ]
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    print(
        f"gunicorn on 127.0.0.1:{port} ({args.workers} workers"
        f"{', ASGI' if args.asgi else f' x {args.threads} threads'}); "
        f"{args.agents} agents ({args.pace} pace); "
        f"{args.rate} inbound/s for {args.seconds} s ({total} messages)"
    )
    workers_cpu = {pid: cpu_seconds(pid) for pid in children(server.pid)}
    try:
        for thread in threads:
            thread.daemon = True
            thread.start()
        for thread in threads:
            thread.join(timeout=args.seconds + 120)
        workers_cpu = {pid: cpu_seconds(pid) - cpu for pid, cpu in workers_cpu.items()}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    print(f"\n{'request':<12} {'count':>7} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for kind, values in sorted(stats.latency.items()):
        print(
            f"{kind:<12} {len(values):>7} {stats.errors[kind]:>7} "
            f"{percentile(values, 50) * 1000:>8.1f} {percentile(values, 95) * 1000:>8.1f} "
            f"{percentile(values, 99) * 1000:>8.1f}"
        )
    errors = sum(stats.errors.values())
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(
        "CPU seconds per web process: "
        + ", ".join(f"{cpu:.1f}" for cpu in sorted(workers_cpu.values(), reverse=True))
    )
    print(f"retried after 429 + Retry-After: {dict(stats.retried) or 0}")
    inbound = stats.latency.get("inbound", [])
    inbound_span = max(stats.last_inbound - start, 1e-9)
    print(
        f"\ninbound achieved: {len(sent)} stored of {total} scheduled, the last acknowledged "
        f"{inbound_span:.1f} s after the first was due ({len(sent) / inbound_span:.0f}/s); "
        "mean latency "
        f"{statistics.mean(inbound) * 1000 if inbound else 0:.1f} ms"
    )
    stored = Message.objects.filter(text__startswith=f"load {run_id} #").count()
    print(
        f"messages in the database: {stored} of {len(sent)} acknowledged "
        f"({'none lost' if stored == len(sent) else 'LOST ' + str(len(sent) - stored)})"
    )
    print(f"errors: {errors}")
    for sample in stats.error_samples:
        print("  ", sample)
    sys.exit(0 if errors == 0 and stored == len(sent) and len(sent) == total else 1)


if __name__ == "__main__":
    main()
