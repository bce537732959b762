"""What operations see: a request id on every log line and background task, JSON logs
on demand (``LOG_FORMAT=json``), errors to Sentry when ``SENTRY_DSN`` is set.

The request id is the incoming ``X-Request-ID`` (from the load balancer) when it looks
like one, else a new one; it is sent back in the response's ``X-Request-ID``, put on
every log line written while the request runs, and travels with the tasks it enqueues
(``config.tasks``), so the worker's lines carry it too.
"""

import json
import logging
import re
import uuid
from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("request_id", default="")
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from(incoming: str | None) -> str:
    return incoming if incoming and _ACCEPTABLE.fullmatch(incoming) else new_request_id()


class RequestIdMiddleware:
    """First in the chain: every response, even an error page, carries the id."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = self._start(request)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response["X-Request-ID"] = request.request_id
        return response

    @staticmethod
    def _start(request):
        request.request_id = request_id_from(request.headers.get("X-Request-ID"))
        tag_sentry(request.request_id)
        return request_id.set(request.request_id)


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or "-") on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id (and the
    traceback as ``exc``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def logging_config(log_format: str, level: str) -> dict:
    formatter = (
        {"()": "config.observability.JsonFormatter"}
        if log_format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "config.observability.RequestIdFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "filters": ["request_id"],
                "formatter": "default",
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"}},
    }


def init_sentry(dsn: str, environment: str, release: str, traces_sample_rate: float) -> None:
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=environment or None,
        release=release or None,
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
    )


def tag_sentry(value: str) -> None:
    from django.conf import settings

    if settings.SENTRY_DSN:
        import sentry_sdk

        sentry_sdk.set_tag("request_id", value)
