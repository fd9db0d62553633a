#!/usr/bin/env bash
# Runs every test of the solution. The README's second command and CI (.ci/run) both call this script.
set -euo pipefail
cd "$(dirname "$0")/.."

# install_missing PACKAGE WHAT: installs a Debian package the tests need, when this runs as root with apt-get;
# otherwise says what to install. The tests that need it then fail with the same advice.
install_missing() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "$2 is missing: installing it (apt-get install $1)."
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >/dev/null; }
  else
    echo "$2 is missing: install it (Debian: apt-get install $1)." >&2
  fi
}

# The PostgreSQL tests start a private server from the machine's PostgreSQL binaries (see test/Shared/PostgresServer.cs).
# CONVERGE_TEST_POSTGRES, when set, names a server to use instead.
if [ -z "${CONVERGE_TEST_POSTGRES:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  install_missing postgresql "PostgreSQL (server binaries)"
fi

# The published-app tests compile a native AOT app, which needs clang (test/Converge.EndToEnd.Tests/PublishedAppTests.cs;
# Debian's clang-N alone will do).
if ! command -v clang >/dev/null 2>&1 && ! compgen -c clang- | grep -E '^clang-[0-9]+$' >/dev/null; then
  install_missing clang "clang (for the native AOT test)"
fi

# The browser tests drive Debian's Chromium headless through Playwright (test/Converge.Browser.Tests/Chromium.cs), never
# a browser build downloaded by Playwright.
if [ ! -x /usr/bin/chromium ]; then
  install_missing chromium "Chromium (for the browser tests)"
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# The whole solution first, benchmarks and samples too: `dotnet test` builds only the test projects and what they
# reference, and every project must build with zero warnings.
dotnet build Converge.slnx --nologo -v quiet

status=0
dotnet test Converge.slnx --nologo --blame-hang-timeout 5m "$@" 2>&1 | tee "$log" || status=$?

# One closing line for the whole solution, summed over the test assemblies.
awk '
  /(Passed|Failed)!  - Failed:/ {
    for (i = 1; i <= NF; i++) {
      if ($i == "Failed:")  { gsub(",", "", $(i+1)); f += $(i+1) }
      if ($i == "Passed:")  { gsub(",", "", $(i+1)); p += $(i+1) }
      if ($i == "Skipped:") { gsub(",", "", $(i+1)); s += $(i+1) }
    }
  }
  END { printf "%d passed, %d failed, %d skipped\n", p, f, s }
' "$log"
exit "$status"
