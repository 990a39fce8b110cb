#!/usr/bin/env bash
# Make sure the `uv` Python package manager is installed; print where it is.
#
# Idempotent: when uv is already reachable this only prints its path and version.
# uv comes from PyPI (the `uv` wheel ships the binary); the astral.sh installer is not
# used, so this also works on machines that reach only package registries.
set -euo pipefail

log() { printf 'ensure_uv: %s\n' "$*" >&2; }

PYTHON="${PYTHON:-python3}"

# Directories pip may put the `uv` script in, which are not always on PATH.
candidate_dirs() {
    printf '%s\n' "$HOME/.local/bin"
    if command -v "$PYTHON" >/dev/null 2>&1; then
        "$PYTHON" - <<'PY' 2>/dev/null || true
import os, sysconfig
print(sysconfig.get_path("scripts"))
try:
    print(sysconfig.get_path("scripts", f"{os.name}_user"))
except KeyError:
    pass
PY
    fi
}

find_uv() {
    local found dir
    if found="$(command -v uv 2>/dev/null)"; then
        printf '%s\n' "$found"
        return 0
    fi
    while IFS= read -r dir; do
        if [ -n "$dir" ] && [ -x "$dir/uv" ]; then
            printf '%s\n' "$dir/uv"
            return 0
        fi
    done < <(candidate_dirs)
    return 1
}

report() {
    local uv_bin="$1"
    printf 'uv: %s (%s)\n' "$uv_bin" "$("$uv_bin" --version 2>/dev/null || echo 'version unknown')"
    if ! command -v uv >/dev/null 2>&1; then
        log "note: $(dirname "$uv_bin") is not on PATH; add it (the Makefile does this itself)"
    fi
}

if uv_bin="$(find_uv)"; then
    report "$uv_bin"
    exit 0
fi

log "uv not found; installing it from PyPI"
installed=0
if command -v pipx >/dev/null 2>&1; then
    if pipx install uv >&2; then installed=1; fi
fi
if [ "$installed" = 0 ] && command -v "$PYTHON" >/dev/null 2>&1; then
    if "$PYTHON" -m pip --version >/dev/null 2>&1; then
        if "$PYTHON" -m pip install --disable-pip-version-check --quiet uv >&2; then
            installed=1
        else
            # Debian's system Python is "externally managed" (PEP 668): install for the user.
            log "plain pip install failed; retrying with --user --break-system-packages"
            if "$PYTHON" -m pip install --disable-pip-version-check --quiet \
                --user --break-system-packages uv >&2; then
                installed=1
            fi
        fi
    else
        log "$PYTHON has no pip (on Debian: apt-get install python3-pip)"
    fi
fi
if [ "$installed" = 0 ]; then
    log "could not install uv: need pipx, or $PYTHON with pip"
    exit 1
fi

# pyenv keeps its shims in sync only after a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash >/dev/null 2>&1 || true; fi

if uv_bin="$(find_uv)"; then
    report "$uv_bin"
    exit 0
fi
log "uv was installed but cannot be found on PATH or in: $(candidate_dirs | tr '\n' ' ')"
exit 1
