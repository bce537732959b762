"""Time the inbox, the API and broadcasts against a database filled by bench/seed.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/parley_bench bench/run
    bench/run pages counts pane          # only some sections
    bench/run --explain                  # also EXPLAIN ANALYZE the slowest query of each

Sections: pages, counts, pane, actions, api, broadcast (default: all).

Server time is measured in-process around Django's test client (middleware, view,
queries, template rendering; no network), median and p95 over --requests requests
after --warmup requests. Queries per request come from one more request under
``CaptureQueriesContext``; "SQL" is the same queries replayed by psycopg on their
own connection (inside a transaction that is rolled back), so page/SQL shows how
much of a page is Python. The inbound API runs under gunicorn (2 workers, otherwise
config/gunicorn.conf.py) on 127.0.0.1 for --api-seconds, each client opening a
connection per request unless --api-keepalive; the broadcast calls bench/broadcast.py
(the flows benchmark) on a database of its own, ``<name>_broadcast_bench``, which it
recreates.

The actions (reply, close, archive) and the inbound API change the database a
little on every run (tens of conversations closed and archived, a few thousand
messages); run bench/seed --reset for a clean slate.
"""

import argparse
import http.client
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECTIONS = ("pages", "counts", "pane", "actions", "api", "broadcast", "reports")
TARGETS = {
    "page": (25.0, 8),
    "counts": (15.0, None),
    "search": (150.0, None),
    "pane": (30.0, None),
    "action": (30.0, None),
    "report": (150.0, None),
}


@dataclass
class Result:
    name: str
    kind: str  # a key of TARGETS
    times: list[float] = field(default_factory=list)
    queries: int = 0
    sql: list[str] = field(default_factory=list)
    sql_times: list[float] = field(default_factory=list)
    slowest: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p95(self) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def sql_median(self) -> float | None:
        return statistics.median(self.sql_times) if self.sql_times else None

    def verdict(self) -> str:
        target_ms, max_queries = TARGETS[self.kind]
        problems = []
        if self.median > target_ms:
            problems.append(f"+{self.median - target_ms:.0f} ms")
        if max_queries is not None and self.queries > max_queries:
            problems.append(f"+{self.queries - max_queries} queries")
        return "met" if not problems else "MISSED (" + ", ".join(problems) + ")"


def parse_args():
    parser = argparse.ArgumentParser(description="Parley benchmarks (see bench/run.py).")
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], default=[])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--api-seconds", type=float, default=30.0)
    parser.add_argument("--api-clients", type=int, default=6)
    parser.add_argument(
        "--api-threads",
        type=int,
        default=None,
        help="gunicorn threads per worker (default: config/gunicorn.conf.py's)",
    )
    parser.add_argument(
        "--api-keepalive",
        action="store_true",
        help="each API client keeps its HTTP connection open (default: one per request)",
    )
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="the API's connections commit with synchronous_commit=off (PGOPTIONS)",
    )
    parser.add_argument(
        "--broadcast-contacts",
        type=int,
        default=0,
        help="seed a database of its own with this many contacts; default: a copy of "
        "this database, to the ~96k contacts with no open conversation",
    )
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE slow queries")
    parser.add_argument("--queries", action="store_true", help="print each query's SQL time")
    parser.add_argument("--match", default="", help="only the operations whose name has this")
    args = parser.parse_args()
    args.sections = args.sections or list(SECTIONS)
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be at least 1 and --warmup at least 0")
    return args


def database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit(
            "bench/run needs the PostgreSQL database that bench/seed filled: set DATABASE_URL,\n"
            "  DATABASE_URL=postgres://postgres@127.0.0.1:5432/parley_bench bench/run\n"
            "(PostgreSQL, like the app and the tests)."
        )
    return url


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ["DEBUG"] = "false"
    hosts = os.environ.get("ALLOWED_HOSTS", "")
    os.environ["ALLOWED_HOSTS"] = ",".join(filter(None, [hosts, "testserver", "127.0.0.1"]))
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ.setdefault("STATIC_NO_MANIFEST", "true")
    import django

    django.setup()


# --- measuring ---------------------------------------------------------------------


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def measure(name: str, kind: str, calls, args) -> Result | None:
    """``calls`` yields zero-argument callables, one per request (a fresh target for
    the actions); warm-up, timed requests, then one request with queries captured."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    result = Result(name, kind)
    if args.match not in name:
        return None
    for _ in range(args.warmup):
        next(calls)()
    for _ in range(args.requests):
        result.times.append(timed(next(calls)))
    with CaptureQueriesContext(connection) as captured:
        next(calls)()
    result.sql = [q["sql"] for q in captured.captured_queries]
    result.queries = len(result.sql)
    replay_sql(result, args)
    target_ms, max_queries = TARGETS[kind]
    print(
        f"  {name:<40} median {result.median:7.1f} ms  p95 {result.p95:7.1f} ms  "
        f"{result.queries:2d} queries  SQL {result.sql_median or 0:6.1f} ms  "
        f"(target {target_ms:.0f} ms{f', {max_queries} queries' if max_queries else ''}: "
        f"{result.verdict()})",
        flush=True,
    )
    return result


_replay = None


def _close_connections() -> None:
    """Leave the bench database alone (a copy needs nobody connected to it)."""
    global _replay
    from django.db import connection

    if _replay is not None:
        _replay.close()
        _replay = None
    connection.close()
    if hasattr(connection, "close_pool"):
        connection.close_pool()


def replay_connection():
    global _replay
    if _replay is None:
        import psycopg

        _replay = psycopg.connect(database_url())
    return _replay


def replay_sql(result: Result, args) -> None:
    """The page's queries alone, run by psycopg; writes are rolled back."""
    conn = replay_connection()
    statements = [s for s in result.sql if not s.upper().startswith(("SAVEPOINT", "RELEASE"))]
    slowest, slowest_ms = "", -1.0
    per_statement = [0.0] * len(statements)
    for i in range(max(args.warmup, 1) + args.requests):
        total = 0.0
        with conn.cursor() as cursor:
            for statement in statements:
                t0 = time.perf_counter()
                cursor.execute(statement.encode())
                if cursor.description is not None:
                    cursor.fetchall()
                elapsed = (time.perf_counter() - t0) * 1000
                total += elapsed
                per_statement[statements.index(statement)] += elapsed
                if i == args.warmup and elapsed > slowest_ms:
                    slowest, slowest_ms = statement, elapsed
        conn.rollback()
        if i >= max(args.warmup, 1):
            result.sql_times.append(total)
    result.slowest = slowest
    if args.queries:
        runs = max(args.warmup, 1) + args.requests
        for statement, spent in zip(statements, per_statement, strict=True):
            print(f"      {spent / runs:7.2f} ms  {' '.join(statement.split())[:150]}")


def explain(result: Result) -> None:
    if not result.slowest or not result.slowest.lstrip().upper().startswith("SELECT"):
        return
    conn = replay_connection()
    rows = conn.execute(
        ("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + result.slowest).encode()
    ).fetchall()
    conn.rollback()
    print(f"\n### {result.name}\n\n```sql\n{result.slowest}\n```\n\n```")
    for (line,) in rows:
        print(line)
    print("```")


def repeat(fn):
    while True:
        yield fn


# --- the sections -------------------------------------------------------------------


def bench_user():
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username="bench").first()
    if user is None:
        sys.exit("No 'bench' user: fill the database with bench/seed first.")
    return user


def logged_in_client():
    from django.test import Client

    client = Client()
    client.force_login(bench_user())
    return client


def get_ok(client, url: str, **headers):
    def call():
        response = client.get(url, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}")
        return response

    return call


def section_pages(args) -> list[Result]:
    from django.db import connection

    from conversations.models import Conversation
    from inbox.selectors import PAGE_SIZE, encode_cursor

    client = logged_in_client()
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.assignee_id FROM conversations_conversation c
               JOIN auth_user u ON u.id = c.assignee_id AND u.is_active
               WHERE c.archived_at IS NULL
               GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"""
        )
        busiest_agent = cursor.fetchone()[0]
    last_of_first_page = Conversation.objects.not_archived().by_activity()[PAGE_SIZE - 1]
    cursor_value = encode_cursor("activity", last_of_first_page)
    deep_row = Conversation.objects.not_archived().by_activity()[20_000]
    deep_cursor = encode_cursor("activity", deep_row)
    pages = [
        ("inbox default (needs me)", "/inbox/", "page"),
        ("inbox all", "/inbox/?view=all", "page"),
        ("tab New", "/inbox/?status=new", "page"),
        ("tab In progress", "/inbox/?status=in_progress", "page"),
        ("tab In a flow", "/inbox/?status=in_flow", "page"),
        ("tab Not contacted", "/inbox/?status=not_contacted", "page"),
        ("tab Closed", "/inbox/?status=closed", "page"),
        ("archived=yes", "/inbox/?archived=yes", "page"),
        ("tag filter (refund)", "/inbox/?tag=refund", "page"),
        ("assignee filter (busiest agent)", f"/inbox/?assignee={busiest_agent}", "page"),
        ("assignee: unassigned", "/inbox/?assignee=none", "page"),
        ("second page by cursor", f"/inbox/?view=all&cursor={cursor_value}", "page"),
        ("page after row 20,000 by cursor", f"/inbox/?view=all&cursor={deep_cursor}", "page"),
        ("htmx list partial", "/inbox/?status=new", "page"),
        ("search: common word (refund)", "/inbox/?q=refund", "search"),
        ("search: order number (48213)", "/inbox/?q=48213", "search"),
        ("search: contact name (Okafor)", "/inbox/?q=Okafor", "search"),
        ("search: name words reversed", "/inbox/?q=Okafor+Quentin&view=all", "search"),
        ("search: phone digits (6 12 34)", "/inbox/?q=6+12+34&view=all", "search"),
        ("contact search (Okafor)", "/contacts/?q=Okafor", "search"),
        ("search: archived, word (dishwasher)", "/inbox/?q=dishwasher&archived=yes", "search"),
    ]
    results = []
    for name, url, kind in pages:
        headers = {"HX-Request": "true", "HX-Target": "conversation-list"} if "htmx" in name else {}
        results.append(measure(name, kind, repeat(get_ok(client, url, **headers)), args))
    return [r for r in results if r]


def section_reports(args) -> list[Result]:
    """Every report over the last 30 days, as the page, its CSV and the API read it,
    with and without filters."""
    from django.db import connection

    from connectors.tokens import token_create
    from conversations.models import Tag
    from reports.forms import today

    client = logged_in_client()
    _, secret = token_create(user=bench_user(), name="bench reports")
    busiest = Tag.objects.order_by("-conversation_links__id").values_list("pk", flat=True).first()
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.closed_by_id FROM conversations_conversation c
               JOIN auth_user u ON u.id = c.closed_by_id AND u.is_active
               WHERE c.closed_at > now() - interval '30 days'
               GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"""
        )
        agent = cursor.fetchone()[0]
    last30 = "range=30d"
    day = f"range=custom&start={today().isoformat()}&end={today().isoformat()}"
    pages = [
        ("reports page, 30 days", f"/reports/?{last30}"),
        ("reports page, 30 days, channel web", f"/reports/?{last30}&channel=web"),
        ("reports page, 30 days, tag", f"/reports/?{last30}&tag={busiest}"),
        ("reports page, 30 days, agent", f"/reports/?{last30}&agent={agent}"),
        ("reports page, today (per hour)", f"/reports/?{day}"),
        ("reports page, this month", "/reports/?range=month"),
        ("reports CSV (statuses), 30 days", f"/reports/?{last30}&export=statuses"),
    ]
    results = [measure(name, "report", repeat(get_ok(client, url)), args) for name, url in pages]
    auth = {"Authorization": f"Bearer {secret}"}
    for kind in ("volume", "speed", "agents"):
        url = f"/api/v1/reports/{kind}?{last30}"
        results.append(
            measure(
                f"API reports/{kind}, 30 days", "report", repeat(get_ok(client, url, **auth)), args
            )
        )
    return [r for r in results if r]


def section_counts(args) -> list[Result]:
    from conversations.selectors import status_counts

    return [measure("status counts (selector)", "counts", repeat(status_counts), args)]


def section_pane(args) -> list[Result]:
    from django.db import connection

    client = logged_in_client()
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.id FROM conversations_conversation c
               WHERE c.id % 25000 = 7 AND c.archived_at IS NULL
                 AND (SELECT count(*) FROM conversations_message m
                      WHERE m.conversation_id = c.id) = 200
               ORDER BY c.id DESC LIMIT 1"""
        )
        row = cursor.fetchone()
    if row is None:
        print("  (no conversation with 200 messages: was the database seeded by bench/seed?)")
        return []
    url = f"/inbox/c/{row[0]}/"
    return [
        measure(
            "pane, 200 messages (htmx)",
            "pane",
            repeat(get_ok(client, url, **{"HX-Request": "true", "HX-Target": "conversation-pane"})),
            args,
        ),
        measure("pane, 200 messages (full page)", "page", repeat(get_ok(client, url)), args),
    ]


def section_actions(args) -> list[Result]:
    from conversations.models import Conversation

    client = logged_in_client()
    need = args.warmup + args.requests + 1
    in_progress = list(
        Conversation.objects.filter(status="in_progress", archived_at__isnull=True)
        .order_by("-last_activity_at")
        .values_list("pk", flat=True)[: 2 * need]
    )
    closed = list(
        Conversation.objects.filter(status="closed", archived_at__isnull=True)
        .order_by("-last_activity_at")
        .values_list("pk", flat=True)[:need]
    )
    if len(in_progress) < 2 * need or len(closed) < need:
        print("  (not enough open and closed conversations left: run bench/seed --reset)")
        return []
    htmx = {"HX-Request": "true", "HX-Target": "conversation-pane"}

    def posts(action: str, targets: list[int], data: dict):
        for pk in targets:

            def call(pk=pk):
                response = client.post(f"/inbox/c/{pk}/{action}/", data, headers=htmx)
                if response.status_code != 200 or b"notice-error" in response.content:
                    raise SystemExit(f"POST {action} on #{pk} answered {response.status_code}")

            yield call

    reply_targets, close_targets = in_progress[:need], in_progress[need:]
    text = {"text": "Thanks for your patience, I have just checked and it ships today."}
    return [
        measure("reply (POST round trip)", "action", posts("reply", reply_targets, text), args),
        measure("close (POST round trip)", "action", posts("close", close_targets, {}), args),
        measure("archive (POST round trip)", "action", posts("archive", closed, {}), args),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _configured_threads() -> int:
    namespace: dict = {}
    exec((ROOT / "config" / "gunicorn.conf.py").read_text(), namespace)  # noqa: S102 - ours
    return namespace["threads"]


def section_api(args) -> dict:
    from django.db import connection

    from connectors.tokens import token_create

    _, token = token_create(user=bench_user(), name="bench/run")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT channel, external_id FROM conversations_contact ORDER BY random() LIMIT 20000"
        )
        known = cursor.fetchall()
    port = free_port()
    env = {
        **os.environ,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    if args.async_commit:
        env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c synchronous_commit=off").strip()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    command = [gunicorn, "-c", "config/gunicorn.conf.py", "config.wsgi", "--workers", "2"]
    command += ["--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    if args.api_threads is not None:
        command += ["--threads", str(args.api_threads)]
    threads = args.api_threads or _configured_threads()
    server = subprocess.Popen(  # noqa: S603 - our own gunicorn, loopback only
        command, cwd=ROOT, env=env
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("gunicorn did not start") from None
                time.sleep(0.2)

        counts = {"ok": 0, "error": 0}
        latencies: list[float] = []
        lock = threading.Lock()
        errors: list[str] = []
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if not args.api_keepalive:  # like urllib: a new connection for each request
            headers["Connection"] = "close"

        def post(connection: http.client.HTTPConnection | None, payload: dict):
            """Status code, and the connection to reuse (None: open a new one)."""
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.request("POST", "/api/v1/messages/inbound", json.dumps(payload), headers)
                response = connection.getresponse()
                body = response.read()
            except (http.client.HTTPException, OSError) as exc:
                connection.close()
                if len(errors) < 3:
                    errors.append(f"{type(exc).__name__}: {exc}")
                return 0, None
            if response.status != 201 and len(errors) < 3:
                errors.append(f"{response.status}: {body[:200]!r}")
            if not args.api_keepalive or response.will_close:
                connection.close()
                return response.status, None
            return response.status, connection

        def client(seed: int, until: float, warm: float):
            rng = random.Random(seed)
            n = 0
            connection = None
            while time.monotonic() < until:
                n += 1
                if rng.random() < 0.2:  # a contact we have never seen
                    channel, external_id = "web", f"api-{seed}-{n}"
                else:
                    channel, external_id = rng.choice(known)
                payload = {
                    "channel": channel,
                    "external_id": external_id,
                    "text": f"Hello, any news about order #{rng.randint(10000, 99999)}?",
                }
                t0 = time.monotonic()
                status, connection = post(connection, payload)
                if t0 < warm:
                    continue
                with lock:
                    counts["ok" if status == 201 else "error"] += 1
                    latencies.append((time.monotonic() - t0) * 1000)

        start = time.monotonic()
        warm = start + 3  # the first seconds warm the workers up and are not counted
        until = warm + args.api_seconds
        clients = [
            threading.Thread(target=client, args=(i, until, warm), daemon=True)
            for i in range(args.api_clients)
        ]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(args.api_seconds + 60)
        elapsed = time.monotonic() - warm
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    rate = counts["ok"] / elapsed
    verdict = "met" if rate >= 400 else f"MISSED (-{400 - rate:.0f}/s)"
    median = statistics.median(latencies) if latencies else 0
    print(
        f"  inbound API, gunicorn 2 workers × {threads} threads, {args.api_clients} clients"
        f"{' (keep-alive)' if args.api_keepalive else ''}"
        f"{', synchronous_commit=off' if args.async_commit else ''}: {rate:.0f} messages/s "
        f"over {elapsed:.0f} s ({counts['ok']} created, {counts['error']} errors, "
        f"median latency {median:.1f} ms) (target 400/s: {verdict})",
        flush=True,
    )
    for error in errors:
        print(f"    error: {error}")
    return {"rate": rate, "ok": counts["ok"], "errors": counts["error"], "verdict": verdict}


def section_broadcast(args) -> dict:
    import dj_database_url

    settings = dj_database_url.parse(database_url())
    name = settings["NAME"].removesuffix("_bench") + "_broadcast_bench"
    url = database_url().split("?")[0].rsplit("/", 1)[0] + "/" + name
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    if args.broadcast_contacts:  # a database of its own, seeded with that many contacts
        options = ["--contacts", str(args.broadcast_contacts)]
    else:  # a copy of this database: the contacts with no open conversation (~96k)
        options = ["--copy-of", settings["NAME"], "--segment", "status:closed"]
        _close_connections()
    print(f"  bench/broadcast.py {' '.join(options)} on {name} …", flush=True)
    started = time.perf_counter()
    completed = subprocess.run(  # noqa: S603 - the flows benchmark, our own script
        [sys.executable, str(ROOT / "bench" / "broadcast.py"), *options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    output = completed.stdout + completed.stderr
    for line in output.splitlines():
        print(f"    {line}")
    seconds = re.search(r"CONTACTS: ([\d.]+) s", output)
    sent = re.search(r"sent=(\d+)", output)
    skipped = re.search(r"skipped=(\d+)", output)
    if not seconds:
        print(f"  broadcast: no result (exit {completed.returncode}, {wall:.0f} s)")
        return {}
    elapsed = float(seconds.group(1))
    processed = int(sent.group(1)) + int(skipped.group(1)) if sent and skipped else 0
    rate = int(sent.group(1)) / elapsed if sent else 0
    # The target is for 100,000 contacts; another size is scaled linearly.
    at_target = elapsed * 100_000 / max(processed, 1)
    verdict = "met" if at_target <= 60 else f"MISSED (+{at_target - 60:.0f} s)"
    scaled = "" if processed == 100_000 else f", {at_target:.0f} s for 100,000"
    print(
        f"  broadcast to {processed:,}: {elapsed:.1f} s, {rate:.0f} deliveries/s "
        f"({processed:,} processed{scaled}) (target 60 s for 100,000: {verdict})",
        flush=True,
    )
    return {"seconds": elapsed, "rate": rate, "verdict": verdict}


def main() -> None:
    args = parse_args()
    database_url()
    setup_django()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM conversations_conversation")
        total = cursor.fetchone()[0]
        cursor.execute("SHOW jit")
        jit = cursor.fetchone()[0]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{total:,} conversations; {args.requests} requests after {args.warmup} warm-up; "
        f"jit={jit}; load average {load} on {os.cpu_count()} cores"
    )
    results: list[Result] = []
    sections = {
        "pages": section_pages,
        "counts": section_counts,
        "pane": section_pane,
        "actions": section_actions,
        "reports": section_reports,
    }
    for name in args.sections:
        print(f"\n{name}", flush=True)
        if name in sections:
            results += [r for r in sections[name](args) if r]
        elif name == "api":
            section_api(args)
        elif name == "broadcast":
            section_broadcast(args)
    if results:
        print(
            "\n| operation | median ms | p95 ms | queries | SQL ms | page/SQL | target | verdict |"
        )
        print("|---|---:|---:|---:|---:|---:|---|---|")
        for r in results:
            ratio = f"{r.median / r.sql_median:.1f}×" if r.sql_median else "–"
            target_ms, max_queries = TARGETS[r.kind]
            target = f"≤ {target_ms:.0f} ms" + (f", ≤ {max_queries} q" if max_queries else "")
            print(
                f"| {r.name} | {r.median:.1f} | {r.p95:.1f} | {r.queries} | "
                f"{r.sql_median or 0:.1f} | {ratio} | {target} | {r.verdict()} |"
            )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nload average at the end: {load}")
    if args.explain:
        for r in results:
            explain(r)


if __name__ == "__main__":
    main()
