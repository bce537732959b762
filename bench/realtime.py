"""Server push under load: many agents' event streams open while contacts write in.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/parley_realtime_bench bench/realtime
    bench/realtime --streams 200 --rate 50 --seconds 60

Starts the production server (gunicorn + uvicorn workers, config/gunicorn_asgi.conf.py,
2 processes) on 127.0.0.1, opens ``--streams`` agents' ``/inbox/stream/`` (each its
own session), then sends ``--rate`` inbound messages a second through the JSON API
for ``--seconds`` (each message from a new contact, so each is one new conversation
and one event). For every message and every stream it measures the delay from the
API's 201 to the stream's ``changed`` event naming that conversation (the same
machine's monotonic clock on both sides; an event that arrives before the client has
read the 201 counts as 0). Prints p50/p95/p99, lost events (a stream that never
heard of a message: must be 0), the server's memory per open stream, and an
ordinary page's latency (the inbox list, every 0.5 s) while the streams are open.

The database must be one of its own: the script migrates it and adds users.
Everything stays on the loopback interface; every loop is bounded in count and time.
"""

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from load import free_port, listening, percentile, session_cookie  # noqa: E402 (bench/load.py, beside this script)


def setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "realtime-bench-only")
    import django

    django.setup()


def prepare(streams: int) -> tuple[list[str], str]:
    """Migrate; one session cookie per agent (made directly: logging 200 agents in
    through the password hasher would measure the hasher); an API token."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from connectors.tokens import token_create

    call_command("migrate", verbosity=0)
    User = get_user_model()
    cookies = []
    for i in range(streams):
        user, _ = User.objects.get_or_create(
            username=f"rt-agent-{i}", defaults={"first_name": f"Agent {i}"}
        )
        cookies.append(session_cookie(user))
    api_user, _ = User.objects.get_or_create(username="rt-api")
    _, token = token_create(user=api_user, name="bench/realtime")
    return cookies, token


def start_server(port: int, workers: int) -> subprocess.Popen:
    env = os.environ | {
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "STATIC_NO_MANIFEST": "true",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
    }
    process = subprocess.Popen(  # noqa: S603 - our own server, loopback only
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn_asgi.conf.py"],
        cwd=ROOT,
        env=env,
    )
    return listening(process, port)


def proc_total(pids: list[int], field: str = "VmRSS:") -> int:
    """The sum of a /proc/<pid>/status field (VmRSS in KiB, Threads) over ``pids``."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def rss_kib(pids: list[int]) -> int:
    return proc_total(pids)


def worker_pids(master: int) -> list[int]:
    """The server's worker processes (children of gunicorn's master), from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            pids.append(int(stat.parent.name))
    return pids


# --- the streams (this process, asyncio) ---------------------------------------------


class Streams:
    def __init__(self, port: int, cookies: list[str]):
        self.port = port
        self.cookies = cookies
        # per stream: conversation id -> first arrival (monotonic)
        self.seen: list[dict[int, float]] = [{} for _ in cookies]
        self.opened = 0
        self.everything = 0  # "refresh everything" events (would hide ids)
        self.tasks: list[asyncio.Task] = []

    async def one(self, index: int, ready: asyncio.Event):
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(
            (
                "GET /inbox/stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Cookie: {self.cookies[index]}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise SystemExit(f"stream {index}: {head[:200]!r}")
        seen = self.seen[index]
        buffer = b""
        counted = False
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            now = time.monotonic()
            buffer += chunk
            *messages, buffer = buffer.split(b"\n\n")
            for message in messages:
                if b"event: hello" in message and not counted:
                    counted = True
                    self.opened += 1
                    if self.opened == len(self.cookies):
                        ready.set()
                    continue
                if b"event: changed" not in message:
                    continue
                # Chunked transfer encoding: the data line is whole inside one message.
                start = message.find(b"data: ")
                data = json.loads(message[start + 6 :].split(b"\r\n", 1)[0].split(b"\n")[0])
                if data.get("all"):
                    self.everything += 1
                for pk in data.get("ids", ()):
                    seen.setdefault(pk, now)


# --- the load (another process: its own GIL) ----------------------------------------


def send_load(port: int, token: str, rate: int, seconds: int, out, start_at: float):
    """``rate`` inbound messages a second from 8 threads; puts (conversation id,
    time of the 201) on ``out``."""
    results, errors = [], []
    lock = threading.Lock()
    total = rate * seconds
    threads = 8
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def worker(offset: int):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for n in range(offset, total, threads):
            due = start_at + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = json.dumps(
                {"channel": "sms", "external_id": f"rt-{uuid.uuid4().hex}", "text": f"m{n}"}
            )
            sent_at = time.monotonic()
            try:
                conn.request(
                    "POST",
                    "/api/v1/messages/inbound",
                    body=body,
                    headers=headers,
                )
                response = conn.getresponse()
                payload = response.read()
                at = time.monotonic()
                with lock:
                    if response.status == 201:
                        conversation = json.loads(payload)["conversation_id"]
                        results.append((conversation, sent_at, at))
                    else:
                        errors.append(response.status)
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=seconds + 120)
    out.put((results, errors))


def probe_pages(port: int, cookie: str, stop_at: float, out):
    """An ordinary request (the inbox list) every 0.5 s while the streams are open."""
    latencies, errors = [], 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.monotonic() < stop_at:
        started = time.monotonic()
        try:
            conn.request("GET", "/inbox/", headers={"Cookie": cookie})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors += 1
            latencies.append(time.monotonic() - started)
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))
    out.put((latencies, errors))


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


def ms(values: list[float], p: float) -> str:
    return f"{percentile(values, p) * 1000:.0f}"


async def run(args, port: int, cookies: list[str], token: str, server: subprocess.Popen):
    streams = Streams(port, cookies)
    # A few streams first, so both workers have loaded their code and started their
    # bus: the memory per stream is measured over the others.
    warm = max(1, min(10, len(cookies) // 10))
    ready = asyncio.Event()
    for index in range(len(cookies)):
        if index == warm:
            while streams.opened < warm:
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)
            before = rss_kib(worker_pids(server.pid))
            threads_before = proc_total(worker_pids(server.pid), "Threads:")
        streams.tasks.append(asyncio.create_task(streams.one(index, ready)))
    await asyncio.wait_for(ready.wait(), timeout=60)
    await asyncio.sleep(2)
    after = rss_kib(worker_pids(server.pid))
    threads_after = proc_total(worker_pids(server.pid), "Threads:")
    measured = len(cookies) - warm
    print(f"{streams.opened} streams open; server RSS {mib(before)} -> {mib(after)} MiB")

    context = multiprocessing.get_context("spawn")
    load_out, probe_out = context.Queue(), context.Queue()
    start_at = time.monotonic() + 1
    load = context.Process(
        target=send_load, args=(port, token, args.rate, args.seconds, load_out, start_at)
    )
    probe = context.Process(
        target=probe_pages, args=(port, cookies[0], start_at + args.seconds, probe_out)
    )
    load.start()
    probe.start()
    loop = asyncio.get_running_loop()
    results, errors = await loop.run_in_executor(None, load_out.get)
    page_latencies, page_errors = await loop.run_in_executor(None, probe_out.get)
    load.join(timeout=10)
    probe.join(timeout=10)
    await asyncio.sleep(args.grace)  # the last events on their way
    loaded = rss_kib(worker_pids(server.pid))
    for task in streams.tasks:
        task.cancel()

    delays, from_request, api, lost = [], [], [], 0
    for conversation, sent_at, at in results:
        api.append(at - sent_at)
        for seen in streams.seen:
            arrived = seen.get(conversation)
            if arrived is None:
                lost += 1
            else:
                delays.append(max(0.0, arrived - at))
                from_request.append(arrived - sent_at)
    sent = len(results)
    print(
        f"sent {sent} messages in {args.seconds} s ({sent / args.seconds:.1f}/s), "
        f"API errors {len(errors)}{' ' + str(errors[:5]) if errors else ''}"
    )
    print(
        f"delivery API 201 -> event, {len(cookies)} streams x {sent} messages "
        f"({len(delays)} deliveries): p50 {percentile(delays, 50) * 1000:.0f} ms, "
        f"p95 {percentile(delays, 95) * 1000:.0f} ms, p99 {percentile(delays, 99) * 1000:.0f} ms, "
        f"max {max(delays, default=0) * 1000:.0f} ms"
    )
    print(
        f"  from the request being sent (API time included): p50 {ms(from_request, 50)} ms, "
        f"p95 {ms(from_request, 95)} ms, p99 {ms(from_request, 99)} ms; "
        f"the API itself: p50 {ms(api, 50)} ms, p95 {ms(api, 95)} ms"
    )
    print(f"lost events: {lost}; 'refresh everything' events: {streams.everything}")
    print(
        f"server memory per open stream: {(after - before) / max(measured, 1):.1f} KiB "
        f"(RSS of {len(worker_pids(server.pid))} workers: {warm} streams {before / 1024:.0f} MiB, "
        f"{len(cookies)} streams {mib(after)} MiB, after the load {mib(loaded)} MiB; "
        f"threads {threads_before} -> {threads_after})"
    )
    print(
        f"ordinary page (/inbox/) during the load: {len(page_latencies)} requests, "
        f"p50 {statistics.median(page_latencies) * 1000:.0f} ms, "
        f"p95 {percentile(page_latencies, 95) * 1000:.0f} ms, errors {page_errors}"
    )
    return lost


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rate", type=int, default=50, help="inbound messages per second")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--grace", type=float, default=3.0, help="seconds to wait at the end")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("Set DATABASE_URL to a database of its own (it is migrated and changed).")
    setup_django()
    cookies, token = prepare(args.streams)
    from django.db import connections

    connections.close_all()
    port = free_port()
    server = start_server(port, args.workers)
    try:
        lost = asyncio.run(run(args, port, cookies, token, server))
    finally:
        server.terminate()
        server.wait(timeout=30)
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
