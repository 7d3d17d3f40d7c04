#!/usr/bin/env bash
# Everything the tests need on a fresh machine, then nothing else: the OS packages (Debian's
# chromium for the browser tests, driven by Playwright without any browser download; curl for the
# README's serve section), xaicli with its test extra (which holds Ray, FastAPI, Playwright, the
# reference libraries) and the two plugin packages the tests install as a user would.
# Safe to run again: what is there already is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if ((${#missing[@]})); then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup-tests: install ${missing[*]} with your package manager (the browser tests need /usr/bin/chromium)" >&2
        exit 1
    fi
    as_root=()
    [ "$(id -u)" = 0 ] || as_root=(sudo)
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
# xaicli first, then the plugins that depend on it: pip 23 cannot resolve a plugin's "xaicli"
# requirement against an editable ".[test]" given in the same command.
python -m pip install -q -e ".[test]"
python -m pip install -q ./plugins/xaicli-edges ./plugins/xaicli-telegram
