#!/usr/bin/env bash
# Runs every test of the solution. The README's second command and CI (.ci/run) both call this script.
set -euo pipefail
cd "$(dirname "$0")/.."

# The PostgreSQL tests start a private server from the machine's PostgreSQL binaries (see test/Shared/PostgresServer.cs);
# install them when they are missing and this runs as root on Debian or Ubuntu. CONVERGE_TEST_POSTGRES, when set,
# names a server to use instead.
if [ -z "${CONVERGE_TEST_POSTGRES:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL server binaries are missing: installing them (apt-get install postgresql)."
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >/dev/null; }
  else
    echo "PostgreSQL server binaries are missing: install them (Debian: apt-get install postgresql) or set CONVERGE_TEST_POSTGRES." >&2
  fi
fi

# The published-app tests compile a native AOT app, which needs clang (test/Converge.EndToEnd.Tests/PublishedAppTests.cs;
# Debian's clang-N alone will do). Install it when it is missing and this runs as root on Debian or Ubuntu.
if ! command -v clang >/dev/null 2>&1 && ! compgen -c clang- | grep -E '^clang-[0-9]+$' >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "clang is missing: installing it (apt-get install clang)."
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang >/dev/null; }
  else
    echo "clang is missing: install it (Debian: apt-get install clang) for the native AOT test." >&2
  fi
fi

# The browser tests drive Debian's Chromium headless through Playwright (test/Converge.Browser.Tests/Chromium.cs), never
# a browser build downloaded by Playwright. Install it when it is missing and this runs as root on Debian or Ubuntu.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Chromium is missing: installing it (apt-get install chromium)."
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; }
  else
    echo "Chromium is missing: install it (Debian: apt-get install chromium) for the browser tests." >&2
  fi
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
