#!/usr/bin/env bash
# Installs what the browser end-to-end tests need and is missing:
# Debian's Chromium (never a browser download of Playwright's own) and the
# pinned npm packages of package-lock.json.
set -euo pipefail
cd "$(dirname "$0")"

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
if [ ! -x /usr/bin/chromium ]; then
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y chromium fonts-noto-color-emoji
elif ! dpkg -s fonts-noto-color-emoji >/dev/null 2>&1; then
  # Only for screenshots that show emoji; the tests pass without it.
  { $sudo apt-get update && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y fonts-noto-color-emoji; } \
    || echo "setup.sh: could not install fonts-noto-color-emoji; emoji in screenshots will be boxes" >&2
fi

# npm ci only when node_modules does not match the lock file.
stale=$(node -e '
  const lock = require("./package-lock.json").packages;
  for (const [k, v] of Object.entries(lock)) {
    if (!k) continue;
    let have = "";
    try { have = require("./" + k + "/package.json").version; } catch {}
    if (have !== v.version) { console.log(k); break; }
  }')
if [ -n "$stale" ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi
