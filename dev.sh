#!/usr/bin/env bash
# The two commands of the README: `bash dev.sh demo` and `bash dev.sh test`.
# Each sets everything up first (ffmpeg from Debian when ffprobe is missing, a virtualenv with
# preflight installed from this folder) and says what it is doing.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${PREFLIGHT_VENV:-.venv}"

say() { printf '==> %s\n' "$*" >&2; }

install_ffmpeg() {
    if command -v ffprobe >/dev/null 2>&1 && command -v ffmpeg >/dev/null 2>&1; then
        return
    fi
    say "ffprobe is missing: installing Debian's ffmpeg"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
}

install_chromium() {
    # The HTML report is checked by rendering it in headless Chromium.
    if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
        return
    fi
    say "chromium is missing: installing Debian's chromium (for the HTML report test)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
}

install_postgresql() {
    # The shared-ledger tests start a throwaway PostgreSQL cluster with initdb and pg_ctl.
    if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
        return
    fi
    say "initdb is missing: installing Debian's postgresql (for the shared-ledger tests)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
}

install_faketime() {
    # The billing tests shift one real process's clock by hours (libfaketime via LD_PRELOAD).
    command -v faketime >/dev/null 2>&1 && return
    say "faketime is missing: installing Debian's faketime (for the shifted-clock billing test)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends faketime >/dev/null
}

install_shells() {
    # The completion scripts are loaded by the real shells; the pre-commit hook test needs git;
    # the progress-bar tests read a real terminal's screen from tmux.
    local missing=()
    for tool in zsh fish git tmux; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [ "${#missing[@]}" -eq 0 ] && return
    say "${missing[*]} missing: installing Debian's (for the completion, pre-commit and terminal tests)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup() {
    install_ffmpeg
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating a virtualenv in $VENV"
        python3 -m venv "$VENV"
    fi
    say "installing preflight and its ${1:-runtime} dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check ".${1:+[$1]}"
}

case "${1:-}" in
demo)
    setup
    say "checking the fixtures, then opening sessions on the loopback stand-in API (no key, no network)"
    "$VENV/bin/python" -m preflight.testing.demo fixtures/media
    # The README's examples type `preflight`: say how to get it, since a script cannot change
    # the PATH of the shell that ran it.
    bin="$(cd "$VENV/bin" && pwd)"
    say "preflight is in $bin, not on your PATH: run  . $bin/activate  (or: export PATH=\"$bin:\$PATH\")"
    ;;
test)
    setup dev
    install_chromium
    install_postgresql
    install_faketime
    install_shells
    say "ruff: lint and format check"
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    say "mypy --strict on the package"
    "$VENV/bin/mypy"
    say "pytest"
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${@:2}"
    ;;
*)
    echo "usage: bash dev.sh demo | bash dev.sh test [pytest args]" >&2
    exit 2
    ;;
esac
