# Shared by bin/run and bin/test: find Python >= 3.12, make the venv, install.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
cd "$ROOT"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31mError:\033[0m %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

python_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }

find_python() {
    local want candidate
    want="$(cat "$ROOT/.python-version" 2>/dev/null || true)"
    if [ -n "$want" ] && command -v pyenv >/dev/null 2>&1; then
        candidate="$(pyenv root)/versions/$want/bin/python3"
        if [ -x "$candidate" ] && python_ok "$candidate"; then echo "$candidate"; return; fi
    fi
    for candidate in python3.13 python3.12 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$(command -v "$candidate")"; then
            command -v "$candidate"; return
        fi
    done
    die "Parley needs Python 3.12 or newer (Django 6). Install python3.13 (or 3.12), or pyenv with $want."
}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ] || ! python_ok "$VENV/bin/python"; then
        local python
        python="$(find_python)"
        say "Creating the virtualenv with $("$python" --version)"
        rm -rf "$VENV"
        "$python" -m venv "$VENV"
    fi
    local stamp="$VENV/.requirements.sha" sum
    sum="$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
        say "Installing Python packages"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v -i "is ignored" || true
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 | grep -v -i "is ignored" || true
        "$VENV/bin/python" -m pip check >/dev/null || die "pip check failed: $("$VENV/bin/python" -m pip check)"
        echo "$sum" > "$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
}
