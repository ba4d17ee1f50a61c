#!/usr/bin/env bash
# Headless Chromium and its WebDriver for tests/integration/test_status_page.py, from Debian's
# packages (selenium is pointed at /usr/bin/chromedriver and never downloads a driver).
# Installs only what is missing: a second run is a no-op. Where apt-get is not available it
# says so and exits 0 — the browser test then skips with the same message.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: no apt-get here; install Chromium and chromedriver yourself" \
         "(the status-page browser test is skipped without them)" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
chromium --version
