"""gunicorn for Parley: ``gunicorn -c config/gunicorn.conf.py config.wsgi``.

Threaded workers (gthread): a request spends much of its time waiting for
PostgreSQL (round trips, and the commit's WAL flush above all), and a threaded
worker serves other requests meanwhile; with 1 thread (the sync worker) two workers
left the CPU idle while they waited (docs/performance.md, "Inbound API"). Threads
share the GIL, so Python work does not run in parallel within a worker: workers, not
threads, scale the CPU (one or two per core). Each thread holds at most one
database connection (the pool's DATABASE_POOL_MAX is per process, 20 by default).
Keep-alive lets an API client reuse its connection.
"""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
keepalive = 5
