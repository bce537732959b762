"""The one web server, for development (bin/run) and production:

    gunicorn -c config/gunicorn_asgi.conf.py

gunicorn manages the processes (``WEB_CONCURRENCY``, 2 by default); each runs
uvicorn's event loop with Django's ASGI application (``config.asgi``). The inbox's
Server-Sent Events streams are async views: an idle stream is a queue on the event
loop (and Django's parked per-request thread), not a database connection and no
CPU, so many of them do not starve ordinary requests. Ordinary (sync) views run each
in a thread of its own (Django's per-request executor), each with at most one
pooled database connection (``DATABASE_POOL_MAX`` per process).
``config/gunicorn.conf.py`` (threaded WSGI workers) stays for the benchmarks and
tests that measured the API that way.
"""

import os

wsgi_app = "config.asgi:application"
bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
keepalive = 5
# A stream is closed by the client; a graceful restart waits this long for them.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "5"))
