"""Fill a PostgreSQL database with a support team's years of history.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/parley_bench bench/seed [--reset]

Default volume: 200,000 contacts, 1,000,000 conversations, about 5,000,000 messages,
tags on a third of the conversations, 2,000 agents over the years
(the newest 100 still active) with their assignments: a team of 100 on duty at any
time, its members changing over the history (each conversation is handled by one of
the 100 on duty when it happened). Status spread:
2% New, 3% In progress, 1% In a flow, 4% Not contacted, the rest Closed, of which
88% archived. Every value is derived from a hash of the row number, so two runs give
the same data.

How it is fast: rows are generated inside PostgreSQL (``INSERT … SELECT`` over
``generate_series``, no row crosses the network); the secondary indexes and the
constraints of the loaded tables are dropped first and rebuilt once at the end
(from their own definitions, read back from the catalogue), then ``VACUUM ANALYZE``
sets the visibility map that index-only counts rely on.

The seeder is a bulk loader of history, like an import: it turns the loaded tables'
declared triggers off the declared way (``pgtrigger.disable`` by URI; the tag lock
would refuse links on closed conversations, the history guards rows it writes in
bulk) and on again whatever happens; the counters that triggers maintain are rebuilt
from the loaded rows (``parley_counts_rebuild()``, migration 0003). The constraints
are re-added, so PostgreSQL re-checks every loaded row against them.
"""

import argparse
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOADED_TABLES = (
    "conversations_contact",
    "conversations_conversation",
    "conversations_message",
    "conversations_conversationtag",
    "conversations_statuschange",
)
PARLEY_TABLES = (
    "flows_broadcastdelivery",
    "flows_broadcast",
    "flows_flowrun",
    "flows_flowstep",
    "flows_flow",
    *LOADED_TABLES,
    "conversations_tag",
)

BENCH_USERNAME = "bench"
BENCH_PASSWORD = "parley-bench"  # noqa: S105 - a benchmark database only
PANE_CONVERSATIONS = 40  # conversations with exactly 200 messages, for the pane benchmark
PANE_MESSAGES = 200

# Word lists for the generated text: enough variety that a search for a product,
# a problem, a city or an order number is selective, and common words are common.
FIRST_NAMES = [
    "Ada",
    "Alan",
    "Alice",
    "Amara",
    "Amir",
    "Ana",
    "Andrea",
    "Anton",
    "Aria",
    "Arjun",
    "Astrid",
    "Ayla",
    "Ben",
    "Bianca",
    "Boris",
    "Carla",
    "Carlos",
    "Chen",
    "Chiara",
    "Chloe",
    "Clara",
    "Daniel",
    "Dara",
    "David",
    "Diego",
    "Dmitri",
    "Elena",
    "Eli",
    "Elif",
    "Emil",
    "Emma",
    "Enzo",
    "Erik",
    "Eva",
    "Farah",
    "Felix",
    "Fatima",
    "Finn",
    "Freya",
    "Gabriel",
    "Greta",
    "Hana",
    "Hannah",
    "Hassan",
    "Hugo",
    "Ida",
    "Igor",
    "Ines",
    "Ingrid",
    "Isaac",
    "Ivan",
    "Jada",
    "Jamal",
    "Jan",
    "Javier",
    "Jin",
    "Joao",
    "Jonas",
    "Julia",
    "Kai",
    "Karim",
    "Kasia",
    "Kenji",
    "Laila",
    "Lars",
    "Laura",
    "Lea",
    "Leo",
    "Lina",
    "Lucas",
    "Luca",
    "Lucia",
    "Maja",
    "Malik",
    "Marco",
    "Maria",
    "Mateo",
    "Maya",
    "Mei",
    "Mia",
    "Milan",
    "Mina",
    "Mohamed",
    "Nadia",
    "Nala",
    "Nina",
    "Noah",
    "Nora",
    "Olga",
    "Omar",
    "Oscar",
    "Pablo",
    "Paula",
    "Petra",
    "Priya",
    "Rafael",
    "Rania",
    "Ravi",
    "Rosa",
    "Ruben",
    "Sara",
    "Selin",
    "Sofia",
    "Sven",
    "Tara",
    "Theo",
    "Tomas",
    "Uma",
    "Vera",
    "Victor",
    "Wei",
    "Yara",
    "Yusuf",
    "Zoe",
    "Zara",
]
LAST_NAMES = [
    "Abbott",
    "Adeyemi",
    "Alvarez",
    "Andersen",
    "Bakker",
    "Banerjee",
    "Becker",
    "Bianchi",
    "Brown",
    "Castro",
    "Chen",
    "Costa",
    "Dubois",
    "Duarte",
    "Eriksson",
    "Evans",
    "Fernandes",
    "Fischer",
    "Garcia",
    "Gomez",
    "Gruber",
    "Haddad",
    "Hansen",
    "Hoffmann",
    "Horvat",
    "Ibrahim",
    "Ivanova",
    "Jansen",
    "Jensen",
    "Kaur",
    "Keller",
    "Kim",
    "Kowalski",
    "Kruger",
    "Lambert",
    "Larsen",
    "Laurent",
    "Lehmann",
    "Lopez",
    "Marino",
    "Martin",
    "Meyer",
    "Moreau",
    "Muller",
    "Nakamura",
    "Nguyen",
    "Novak",
    "Okafor",
    "Olsen",
    "Ortiz",
    "Park",
    "Patel",
    "Perez",
    "Petrov",
    "Popescu",
    "Quinn",
    "Ramos",
    "Rossi",
    "Russo",
    "Santos",
    "Sato",
    "Schmidt",
    "Schneider",
    "Silva",
    "Singh",
    "Smith",
    "Sorensen",
    "Suzuki",
    "Tanaka",
    "Torres",
    "Vargas",
    "Varga",
    "Wagner",
    "Wang",
    "Weber",
    "Williams",
    "Wojcik",
    "Yamamoto",
    "Yilmaz",
    "Zhang",
    "Zimmermann",
]
PRODUCTS = [
    "jacket",
    "backpack",
    "blender",
    "kettle",
    "lamp",
    "headphones",
    "charger",
    "keyboard",
    "monitor",
    "sofa",
    "mattress",
    "bicycle",
    "helmet",
    "tent",
    "stroller",
    "vacuum",
    "toaster",
    "speaker",
    "camera",
    "tablet",
    "router",
    "printer",
    "watch",
    "sneakers",
    "raincoat",
    "suitcase",
    "desk",
    "chair",
    "drill",
    "microwave",
    "thermostat",
    "scooter",
    "fridge",
    "oven",
    "dishwasher",
    "projector",
    "guitar",
    "skateboard",
    "umbrella",
    "wallet",
]
PROBLEMS = [
    "broken",
    "scratched",
    "missing",
    "late",
    "damaged",
    "wrong",
    "defective",
    "noisy",
    "leaking",
    "cracked",
    "incomplete",
    "faulty",
    "overheating",
    "stuck",
    "dented",
]
CITIES = [
    "Lisbon",
    "Porto",
    "Madrid",
    "Berlin",
    "Hamburg",
    "Munich",
    "Paris",
    "Lyon",
    "Milan",
    "Rome",
    "Vienna",
    "Prague",
    "Warsaw",
    "Krakow",
    "Dublin",
    "Leeds",
    "Oslo",
    "Bergen",
    "Stockholm",
    "Helsinki",
    "Tallinn",
    "Riga",
    "Athens",
    "Sofia",
    "Zagreb",
    "Ljubljana",
    "Brussels",
    "Antwerp",
    "Utrecht",
    "Rotterdam",
    "Zurich",
    "Geneva",
    "Basel",
    "Turin",
    "Seville",
    "Valencia",
]
INBOUND = [
    "Hi, my order #{o} has not arrived yet. Can you check where it is?",
    "The {p} I received is {x}. I would like a refund please.",
    "Hello! Do you ship the {p} to {c}? And how long does delivery take?",
    "I was charged twice for order #{o}. Please fix this.",
    "Can I change the delivery address for order #{o} to {c}?",
    "The tracking page for my {p} says delivered but I have nothing.",
    "Is the {p} available in another colour? The website is unclear.",
    "My {p} stopped working after two weeks, it is {x} now.",
    "How do I return the {p}? I cannot find the form.",
    "Thanks, that solved it. Have a nice day!",
    "I still have not received the refund for order #{o}.",
    "Could you send me an invoice for order #{o}? Company address in {c}.",
    "Your courier left the {p} outside in the rain, the box is {x}.",
    "Can I pick up the {p} at your store in {c} instead?",
    "Hello, I need help with my account, I cannot log in.",
    "Is there a warranty on the {p}? Mine is {x}.",
]
OUTBOUND = [
    "Hi {n}, thanks for writing. I have checked order #{o}: it ships tomorrow from {c}.",
    "Sorry to hear the {p} is {x}. I have started a replacement for you.",
    "Your refund for order #{o} is on its way; it takes 3 to 5 working days.",
    "Yes, we deliver to {c}. Standard delivery takes 2 to 4 days.",
    "I have updated the address on order #{o}. You will get a new tracking link.",
    "Could you send a photo of the {p}? Then I can open the claim.",
    "The {p} has a two-year warranty. I have booked a repair in {c}.",
    "Here is the return label for the {p}. Drop it at any post office.",
    "Thanks {n}, glad it is sorted. Anything else I can do?",
    "I have asked the courier in {c} to look into it and will get back to you.",
    "Your invoice for order #{o} is attached. Have a good week!",
    "I have reset your login; please check your email for the link.",
]


def parse_args():
    parser = argparse.ArgumentParser(description="Fill a PostgreSQL database for the benchmarks.")
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--agents", type=int, default=2_000, help="agents over the years")
    parser.add_argument(
        "--active-agents", type=int, default=100, help="of them, still active (the newest)"
    )
    parser.add_argument(
        "--history-days",
        type=int,
        default=365,
        help="the closed conversations' activity spreads over this many days up to now",
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="empty the Parley tables first when the database already holds data",
    )
    args = parser.parse_args()
    open_share = 0.10
    if args.contacts * 1.0 < args.conversations * open_share:
        parser.error("--contacts must be at least a tenth of --conversations (one open each)")
    if args.conversations < 1000 or args.contacts < 100 or min(args.agents, args.active_agents) < 1:
        parser.error("too small: at least 1000 conversations, 100 contacts and 1 agent")
    return args


def database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit(
            "bench/seed needs a PostgreSQL database: set DATABASE_URL, for example\n"
            "  DATABASE_URL=postgres://postgres@127.0.0.1:5432/parley_bench bench/seed\n"
            "(PostgreSQL, like the app and the tests)."
        )
    return url


def maintenance_connection(url: str):
    """An autocommit connection to the server's ``postgres`` database, to create or
    drop the database named in ``url``; returns it and that name."""
    import dj_database_url
    import psycopg

    settings = dj_database_url.parse(url)
    conn = psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"] or "postgres",
        password=settings["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )
    return conn, settings["NAME"]


def ensure_database(url: str) -> None:
    """Create the database when it does not exist yet."""
    from psycopg import sql

    conn, name = maintenance_connection(url)
    with conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def migrate() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


@contextmanager
def guards_off():
    """The loaded tables' declared triggers off while history is loaded, and on again
    whatever happens (``pgtrigger.disable``/``enable`` by URI, in their own commits)."""
    import pgtrigger
    from pgtrigger import registry

    uris = [
        f"{model._meta.label}:{trigger.name}"
        for model, trigger in registry.registered()
        if model._meta.db_table in LOADED_TABLES
    ]
    from django.db import connection

    from reports.rollup import TRIGGER_NAMES

    def reports_triggers(state: str) -> None:  # plain SQL triggers (reports/rollup.py)
        with connection.cursor() as cursor:
            for table, name in TRIGGER_NAMES:
                cursor.execute(f"ALTER TABLE {table} {state} TRIGGER {name}")

    pgtrigger.disable(*uris)
    reports_triggers("DISABLE")
    try:
        yield
    finally:
        pgtrigger.enable(*uris)
        reports_triggers("ENABLE")


def bench_password_hash() -> str:
    from django.contrib.auth.hashers import make_password

    return make_password(BENCH_PASSWORD)


def sql_array(words: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + w.replace("'", "''") + "'" for w in words) + "]::text[]"


def text_function(name: str, templates: list[str]) -> str:
    """An SQL function (session-local) that fills one of ``templates`` from hashes."""
    cases = []
    for i, template in enumerate(templates):
        parts = []
        for piece in template.replace("{", "\x00{").replace("}", "}\x00").split("\x00"):
            if not piece:
                continue
            if piece == "{o}":
                parts.append("(10000 + pg_temp.h(seed, 3) % 90000)::text")
            elif piece == "{p}":
                parts.append("pg_temp.pick(pg_temp.products(), pg_temp.h(seed, 4))")
            elif piece == "{x}":
                parts.append("pg_temp.pick(pg_temp.problems(), pg_temp.h(seed, 5))")
            elif piece == "{c}":
                parts.append("pg_temp.pick(pg_temp.cities(), pg_temp.h(seed, 6))")
            elif piece == "{n}":
                parts.append("pg_temp.pick(pg_temp.first_names(), pg_temp.h(seed, 7))")
            else:
                parts.append("'" + piece.replace("'", "''") + "'")
        cases.append(f"WHEN {i} THEN " + " || ".join(parts))
    return f"""
    CREATE FUNCTION pg_temp.{name}(seed bigint) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
        SELECT CASE pg_temp.h(seed, 2) % {len(templates)} {" ".join(cases)} END
    $$;
    """


def helper_functions() -> list[str]:
    return [
        # A stable non-negative hash of (row number, salt).
        """CREATE FUNCTION pg_temp.h(seed bigint, salt int) RETURNS bigint
           LANGUAGE sql IMMUTABLE
           AS $$ SELECT (hashint8(seed * 31 + salt)::bigint & 2147483647) $$;""",
        """CREATE FUNCTION pg_temp.pick(arr text[], n bigint) RETURNS text
           LANGUAGE sql IMMUTABLE AS $$ SELECT arr[1 + n % array_length(arr, 1)] $$;""",
        f"""CREATE FUNCTION pg_temp.first_names() RETURNS text[]
            LANGUAGE sql IMMUTABLE AS $$ SELECT {sql_array(FIRST_NAMES)} $$;""",
        f"""CREATE FUNCTION pg_temp.last_names() RETURNS text[]
            LANGUAGE sql IMMUTABLE AS $$ SELECT {sql_array(LAST_NAMES)} $$;""",
        f"""CREATE FUNCTION pg_temp.products() RETURNS text[]
            LANGUAGE sql IMMUTABLE AS $$ SELECT {sql_array(PRODUCTS)} $$;""",
        f"""CREATE FUNCTION pg_temp.problems() RETURNS text[]
            LANGUAGE sql IMMUTABLE AS $$ SELECT {sql_array(PROBLEMS)} $$;""",
        f"""CREATE FUNCTION pg_temp.cities() RETURNS text[]
            LANGUAGE sql IMMUTABLE AS $$ SELECT {sql_array(CITIES)} $$;""",
        text_function("inbound_text", INBOUND),
        text_function("outbound_text", OUTBOUND),
    ]


class Loader:
    def __init__(self, conn, args):
        self.conn = conn
        self.args = args
        self.started = time.perf_counter()

    def step(self, label: str, statement: str, params=None) -> None:
        t0 = time.perf_counter()
        if params is None:
            statement = statement.replace("%%", "%")
        cursor = self.conn.execute(statement, params)
        rows = f" ({cursor.rowcount:,} rows)" if cursor.rowcount and cursor.rowcount > 0 else ""
        print(f"  {label}{rows}: {time.perf_counter() - t0:.1f} s", flush=True)

    # --- preparation ---------------------------------------------------------

    def check_empty(self) -> None:
        count = self.conn.execute(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM conversations_conversation LIMIT 1) c)"
            " + (SELECT count(*) FROM (SELECT 1 FROM conversations_contact LIMIT 1) k)"
        ).fetchone()[0]
        if count and not self.args.reset:
            sys.exit(
                "The database already holds conversations or contacts. Run with --reset to "
                "empty the Parley tables first (never on a database with real data)."
            )
        tables = ", ".join(PARLEY_TABLES)
        self.step("empty the Parley tables", f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        # Whatever ran before may have left rows pointing at the bench's users (an API
        # token from bench/run api, an admin log line, a group): every table that
        # references auth_user lets go of them first, found in the catalogue.
        users = "SELECT id FROM auth_user WHERE username LIKE 'agent%%' OR username = %s"
        referencing = self.conn.execute(
            """SELECT c.conrelid::regclass::text, a.attname
               FROM pg_constraint c
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
               WHERE c.contype = 'f' AND c.confrelid = 'auth_user'::regclass"""
        ).fetchall()
        for table, column in referencing:
            if table not in PARLEY_TABLES:
                self.conn.execute(
                    f'DELETE FROM {table} WHERE "{column}" IN ({users})', [BENCH_USERNAME]
                )
        self.conn.execute(f"DELETE FROM auth_user WHERE id IN ({users})", [BENCH_USERNAME])
        self.conn.commit()  # the deferred foreign-key checks of the DELETE run here

    def drop_indexes_and_constraints(self) -> tuple[list[str], list[str]]:
        """Drop what slows a bulk load; return the statements that rebuild it."""
        names = list(LOADED_TABLES)
        constraints = self.conn.execute(
            """
            SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype
            FROM pg_constraint c
            WHERE c.conrelid = ANY (%s::regclass[]) AND c.contype IN ('u', 'c', 'f')
            ORDER BY c.contype = 'f', c.conname
            """,
            [names],
        ).fetchall()
        indexes = self.conn.execute(
            """
            SELECT i.indrelid::regclass::text, ic.relname, pg_get_indexdef(i.indexrelid)
            FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
            WHERE i.indrelid = ANY (%s::regclass[]) AND NOT i.indisprimary
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid
                              AND c.conrelid = i.indrelid)
            ORDER BY ic.relname
            """,
            [names],
        ).fetchall()
        # Foreign keys from other tables into the loaded ones (flows, say) stay: their
        # tables are empty, and the primary keys they point at are kept.
        for table, name, _definition, _kind in reversed(constraints):
            self.conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for _table, name, _definition in indexes:
            self.conn.execute(f'DROP INDEX "{name}"')
        rebuild_indexes = [definition for _t, _n, definition in indexes]
        rebuild_constraints = [
            f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
            for table, name, definition, _kind in constraints
        ]
        print(
            f"  dropped {len(indexes)} indexes and {len(constraints)} constraints "
            "for the load (rebuilt at the end)"
        )
        return rebuild_indexes, rebuild_constraints

    # --- the rows --------------------------------------------------------------

    def load(self) -> None:
        a = self.args
        n_conv, n_contacts, n_agents = a.conversations, a.contacts, a.agents
        n_active = min(a.active_agents, n_agents)
        self.step(
            "agents",
            """
            INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                                   email, is_staff, is_active, date_joined)
            SELECT '!bench-unusable', false, 'agent' || lpad(g::text, 5, '0'),
                   pg_temp.pick(pg_temp.first_names(), pg_temp.h(g, 11)),
                   pg_temp.pick(pg_temp.last_names(), pg_temp.h(g, 12)),
                   'agent' || g || '@example.com', false, g > %s - %s,
                   now() - interval '3 years'
            FROM generate_series(1, %s) g
            """,
            [n_agents, n_active, n_agents],
        )
        self.conn.execute(
            """INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                                      email, is_staff, is_active, date_joined)
               VALUES (%s, true, %s, 'Bench', 'Agent', 'bench@example.com', true, true, now())""",
            [bench_password_hash(), BENCH_USERNAME],
        )
        self.conn.execute(
            """CREATE TEMP TABLE bench_agents AS
               SELECT row_number() OVER (ORDER BY id) AS slot, id FROM auth_user
               WHERE username LIKE 'agent%'"""
        )
        self.conn.execute("ALTER TABLE bench_agents ADD PRIMARY KEY (slot)")
        self.conn.execute(
            """INSERT INTO conversations_tag (name, colour, key)
               SELECT name, colour, name FROM (VALUES
               ('billing', '#2563eb'), ('refund', '#dc2626'), ('shipping', '#16a34a'),
               ('vip', '#9333ea'), ('bug', '#ea580c'), ('feedback', '#0891b2'),
               ('returns', '#be123c'), ('warranty', '#4d7c0f'), ('account', '#7c3aed'),
               ('invoice', '#0f766e'), ('urgent', '#b91c1c'), ('wholesale', '#a16207'),
               ('press', '#475569'), ('partner', '#1d4ed8'), ('spam', '#6b7280')
               ) AS t (name, colour)"""
        )
        self.step(
            "contacts",
            """
            INSERT INTO conversations_contact (channel, external_id, name, attributes, created_at)
            SELECT (ARRAY['web', 'whatsapp', 'telegram', 'sms', 'api'])[1 + pg_temp.h(g, 21) %% 5],
                   'c' || g,
                   pg_temp.pick(pg_temp.first_names(), pg_temp.h(g, 22)) || ' '
                       || pg_temp.pick(pg_temp.last_names(), pg_temp.h(g, 23)),
                   jsonb_build_object('city', pg_temp.pick(pg_temp.cities(), pg_temp.h(g, 24))),
                   now() - interval '3 years' + (pg_temp.h(g, 25) %% 1000) * interval '1 hour'
            FROM generate_series(1, %s) g
            """,
            [n_contacts],
        )
        # Conversation g belongs to contact ((g - 1) % contacts) + 1. The open ones
        # (10%) are the newest rows, at most one per contact; older rows are
        # closed, 88% of them archived. Activity runs from three years ago to now
        # with the row number, so the newest rows are also the most recently active.
        n_open = n_conv // 10
        self.conn.execute(
            """
            CREATE TEMP TABLE bench_conv AS
            SELECT h.*,
                   CASE WHEN h.status IN ('in_progress', 'closed') OR pg_temp.h(h.g, 41) %% 5 = 0
                        THEN h.handler_k
                   END AS agent_k
            FROM (
            SELECT s.*,
                   CASE WHEN s.status = 'not_contacted' THEN 0
                        WHEN s.g %% %(pane_every)s = 7 THEN %(pane_messages)s
                        ELSE 1 + pg_temp.h(s.g, 33) %% 9 + (pg_temp.h(s.g, 34) %% 5 = 0)::int
                   END AS n_messages,
                   -- Minutes between two messages: the first response time.
                   (1 + pg_temp.h(s.g, 61) %% 30 * (1 + pg_temp.h(s.g, 62) %% 12))
                       * interval '1 minute' AS gap,
                   -- The agent who handles it: one of the team on duty at the time,
                   -- a window of ``active`` agents that slides from the first hired
                   -- to the newest over the history (the open ones: the newest).
                   CASE WHEN s.status = 'closed'
                        THEN 1 + floor(s.g::float8 / %(closed)s * (%(agents)s - %(active)s))::int
                             + pg_temp.h(s.g, 42) %% %(active)s
                        ELSE %(agents)s - %(active)s + 1 + pg_temp.h(s.g, 42) %% %(active)s
                   END AS handler_k
            FROM (
                SELECT g,
                       ((g - 1) %% %(contacts)s) + 1 AS contact_id,
                       CASE WHEN g <= %(closed)s THEN 'closed'
                            ELSE (ARRAY['new', 'new', 'in_progress', 'in_progress', 'in_progress',
                                        'in_flow', 'not_contacted', 'not_contacted',
                                        'not_contacted', 'not_contacted']
                                 )[1 + pg_temp.h(g, 31) %% 10]
                       END AS status,
                       CASE WHEN g <= %(closed)s
                            THEN now() - %(history)s * interval '1 day'
                                 + (g::float8 / %(closed)s)
                                 * ((%(history)s - 2) * interval '1 day')
                            ELSE now() - (pg_temp.h(g, 32) %% 2592000) * interval '1 second'
                       END AS last_activity_at
                FROM generate_series(1, %(conversations)s) g
            ) s
            ) h
            """,
            {
                "contacts": n_contacts,
                "closed": n_conv - n_open,
                "conversations": n_conv,
                "agents": n_agents,
                "active": n_active,
                "pane_every": max(n_conv // PANE_CONVERSATIONS, 1),
                "pane_messages": PANE_MESSAGES,
                "history": a.history_days,
            },
        )
        self.step(
            "conversations",
            """
            INSERT INTO conversations_conversation (
                id, contact_id, status, assignee_id, created_at, updated_at, last_activity_at,
                waiting_since, last_message_preview, closed_at, closed_by_id, archived_at,
                first_response_at, first_response_by_id, first_response_seconds,
                resolution_seconds)
            SELECT b.g, b.contact_id, b.status,
                   a.id,
                   b.created_at,
                   b.last_activity_at,
                   b.last_activity_at,
                   CASE WHEN b.status = 'new'
                          OR (b.status = 'in_progress' AND pg_temp.h(b.g, 43) %% 3 = 0)
                        THEN b.last_activity_at END,
                   CASE WHEN b.n_messages = 0 THEN ''
                        WHEN (b.n_messages - 1) %% 2 = 0
                        THEN left(pg_temp.inbound_text(b.g * 1000 + b.n_messages - 1), 160)
                        ELSE left(pg_temp.outbound_text(b.g * 1000 + b.n_messages - 1), 160)
                   END,
                   CASE WHEN b.status = 'closed' THEN b.last_activity_at + interval '1 hour' END,
                   CASE WHEN b.status = 'closed' THEN a.id END,
                   CASE WHEN b.status = 'closed' AND pg_temp.h(b.g, 44) %% 100 < 88
                        THEN least(b.last_activity_at + interval '7 days', now()) END,
                   -- Message 0 (the contact) at created + 2 gaps, message 1 (the
                   -- handler's reply, unless in a flow) one gap later.
                   CASE WHEN b.answered THEN b.created_at + 3 * b.gap END,
                   CASE WHEN b.answered THEN h.id END,
                   CASE WHEN b.answered THEN extract(epoch FROM b.gap)::integer END,
                   CASE WHEN b.status = 'closed'
                        THEN extract(epoch FROM b.last_activity_at + interval '1 hour'
                                                - b.created_at)::integer END
            FROM (SELECT *, last_activity_at - (n_messages + 1) * gap AS created_at,
                         n_messages >= 2 AND status <> 'in_flow' AS answered
                  FROM bench_conv) b
            LEFT JOIN bench_agents a ON a.slot = b.agent_k
            LEFT JOIN bench_agents h ON h.slot = b.handler_k
            ORDER BY b.g
            """,
        )
        self.conn.execute(
            "SELECT setval(pg_get_serial_sequence('conversations_conversation', 'id'), %s)",
            [n_conv],
        )
        # Messages alternate inbound (even k) and outbound (odd k); the last one is
        # the conversation's preview and its last activity.
        self.step(
            "messages",
            """
            INSERT INTO conversations_message (conversation_id, direction, sender_kind, author_id,
                                               text, created_at)
            SELECT b.g,
                   CASE WHEN k %% 2 = 0 THEN 'inbound' ELSE 'outbound' END,
                   CASE WHEN k %% 2 = 0 THEN 'contact'
                        WHEN b.status = 'in_flow' THEN 'flow' ELSE 'agent' END,
                   CASE WHEN k %% 2 = 1 AND b.status <> 'in_flow' THEN a.id END,
                   CASE WHEN k %% 2 = 0 THEN pg_temp.inbound_text(b.g * 1000 + k)
                        ELSE pg_temp.outbound_text(b.g * 1000 + k) END,
                   b.last_activity_at - (b.n_messages - 1 - k) * b.gap
            FROM bench_conv b
            LEFT JOIN bench_agents a ON a.slot = b.handler_k
            CROSS JOIN generate_series(0, b.n_messages - 1) k
            ORDER BY b.g, k
            """,
        )
        self.step(
            "tag links (a third of the conversations)",
            """
            INSERT INTO conversations_conversationtag (conversation_id, tag_id, added_at)
            SELECT b.g, t.id, b.last_activity_at - interval '1 hour'
            FROM bench_conv b
            JOIN LATERAL (
                SELECT id FROM conversations_tag
                WHERE id IN (1 + pg_temp.h(b.g, 51) %% 15, 1 + pg_temp.h(b.g, 52) %% 15)
            ) t ON true
            WHERE pg_temp.h(b.g, 50) %% 3 = 0
            """,
        )
        self.step(
            "status history (opened, answered, closed: up to three rows a conversation)",
            """
            INSERT INTO conversations_statuschange (conversation_id, from_status, to_status, event,
                                                    source, actor_id, note, at)
            SELECT c.id, r.f, r.t, r.event, r.source, r.actor, '', r.at
            FROM conversations_conversation c
            CROSS JOIN LATERAL (VALUES
                (1, '', CASE WHEN c.status IN ('not_contacted', 'in_flow') THEN c.status
                             ELSE 'new' END,
                    CASE c.status WHEN 'not_contacted' THEN 'contact_created'
                                  WHEN 'in_flow' THEN 'flow_start' ELSE 'contact_writes' END,
                    CASE c.status WHEN 'not_contacted' THEN 'system'
                                  WHEN 'in_flow' THEN 'flow' ELSE 'contact' END,
                    NULL::integer, c.created_at),
                (2, 'new', 'in_progress', 'agent_reply', 'agent', c.first_response_by_id,
                    coalesce(c.first_response_at, c.created_at)),
                (3, CASE WHEN c.first_response_at IS NULL THEN 'new' ELSE 'in_progress' END,
                    'closed', 'close', 'agent', c.closed_by_id, c.closed_at)
            ) r (k, f, t, event, source, actor, at)
            WHERE r.k = 1
               OR (r.k = 2 AND (c.status = 'in_progress'
                                OR (c.status = 'closed' AND c.first_response_at IS NOT NULL)))
               OR (r.k = 3 AND c.status = 'closed')
            ORDER BY c.id, r.k
            """,
        )

    def rebuild(self, url: str, indexes: list[str], constraints: list[str]) -> None:
        """Rebuild what was dropped. The big trigram index takes a core of its own
        (a GIN build is single-threaded) while this connection does the rest."""
        import psycopg

        settings = "SET maintenance_work_mem = '1GB'; SET max_parallel_maintenance_workers = 2"
        self.conn.execute(settings)
        on_the_side = [s for s in indexes if "USING gin" in s and "conversations_message" in s]
        failures: list[BaseException] = []

        def build_side() -> None:
            try:
                with psycopg.connect(url, autocommit=True) as side:
                    side.execute(settings)
                    for statement in on_the_side:
                        t0 = time.perf_counter()
                        side.execute(statement)
                        label = statement.split(" ON ")[0].replace("CREATE ", "").lower()
                        print(f"  {label}: {time.perf_counter() - t0:.1f} s", flush=True)
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        side = threading.Thread(target=build_side)
        side.start()
        for statement in indexes:
            if statement not in on_the_side:
                label = statement.split(" ON ")[0].replace("CREATE ", "").lower()
                self.step(label, statement)
        # The message table's constraints wait for the trigram build: do them last.
        constraints = sorted(constraints, key=lambda s: "conversations_message " in s)
        for statement in constraints:
            self.step(statement.split(" ADD ")[1][:60].lower(), statement)
        side.join()
        if failures:
            raise failures[0]


def main() -> None:
    args = parse_args()
    url = database_url()
    started = time.perf_counter()
    ensure_database(url)
    migrate()
    print(f"migrated in {time.perf_counter() - started:.1f} s")

    import psycopg

    with guards_off(), psycopg.connect(url, autocommit=False) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SET jit = off")  # compiling the generators costs more than it saves
        loader = Loader(conn, args)
        for statement in helper_functions():
            conn.execute(statement)
        loader.check_empty()
        indexes, constraints = loader.drop_indexes_and_constraints()
        loader.load()
        conn.commit()
        print(f"rows loaded at {time.perf_counter() - started:.1f} s; rebuilding indexes")
        loader.rebuild(url, indexes, constraints)
        has_counts = conn.execute(
            "SELECT to_regprocedure('parley_counts_rebuild()') IS NOT NULL"
        ).fetchone()[0]
        if has_counts:
            loader.step("status counters", "SELECT parley_counts_rebuild()")
        conn.commit()

    from conversations.inbox_settings import business_timezone
    from reports import rollup

    t0 = time.perf_counter()
    rows = rollup.rebuild(str(business_timezone()))
    print(
        f"  reports rollups ({rows:,} rows, manage.py rebuild_reports): "
        f"{time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        for table in (*LOADED_TABLES, "auth_user", "conversations_tag"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
        print(f"  vacuum analyze: {time.perf_counter() - t0:.1f} s")
        totals = conn.execute(
            """SELECT (SELECT count(*) FROM conversations_contact),
                      (SELECT count(*) FROM conversations_conversation),
                      (SELECT count(*) FROM conversations_message),
                      (SELECT count(*) FROM conversations_conversationtag),
                      pg_size_pretty(pg_database_size(current_database()))"""
        ).fetchone()
        spread = conn.execute(
            """SELECT status || CASE WHEN archived_at IS NULL THEN '' ELSE ' (archived)' END,
                      count(*) FROM conversations_conversation GROUP BY 1 ORDER BY 1"""
        ).fetchall()
    elapsed = time.perf_counter() - started
    print(
        f"\n{totals[0]:,} contacts, {totals[1]:,} conversations, {totals[2]:,} messages, "
        f"{totals[3]:,} tag links; database size {totals[4]}"
    )
    print("  " + ", ".join(f"{name}: {count:,}" for name, count in spread))
    print(
        f"agents: {args.agents:,}, the newest {min(args.active_agents, args.agents)} active; "
        f"bench login: {BENCH_USERNAME} / {BENCH_PASSWORD}"
    )
    print(f"SEEDED IN {elapsed:.0f} s ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    main()
