"""Run callables in real threads, released at the same moment, each with its own
database connection (so each runs its own transactions)."""

import threading

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
