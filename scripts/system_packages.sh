#!/usr/bin/env bash
# What the tests need from the system, installed when missing: Debian's headless Chromium and its
# ChromeDriver, in which tests/test_serve.py drives the page of `seq2seq serve`.
# The one place this rule lives: scripts/test.sh runs it, and so CI (.ci/run) does.
# Needs apt-get, as root or through sudo; otherwise it says so in one line and fails.
set -euo pipefail
PACKAGES=(chromium chromium-driver)
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
fail() { echo "[setup] error: the tests need Debian's ${PACKAGES[*]} (chromium, chromedriver): $1" >&2; exit 1; }
command -v apt-get >/dev/null || fail "no apt-get on this machine to install them; install them by other means"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || fail "not root and no sudo: run 'apt-get install ${PACKAGES[*]}' as root"
    sudo -n true 2>/dev/null || fail "sudo asks for a password: run 'sudo apt-get install ${PACKAGES[*]}' once"
    SUDO=(sudo -n)
fi
echo "[setup] installing ${PACKAGES[*]} with apt-get" >&2
log=$(mktemp)
if ! { "${SUDO[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${PACKAGES[@]}"; } >"$log" 2>&1; then
    fail "apt-get failed ($(tail -n 1 "$log"))"
fi
rm -f "$log"
command -v chromium >/dev/null && command -v chromedriver >/dev/null || fail "apt-get installed them, but chromium or chromedriver is not on PATH"
