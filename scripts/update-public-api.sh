#!/usr/bin/env bash
# Adds every new public symbol a src project exposes to its PublicAPI.Unshipped.txt (RS0016), after review.
# Usage: scripts/update-public-api.sh src/Converge.Work
set -euo pipefail
project="${1:?project folder}"
file="$project/PublicAPI.Unshipped.txt"
for _ in 1 2 3; do
  out=$(dotnet build "$project" --no-incremental 2>&1 || true)
  symbols=$(grep -oP "RS0016: Symbol '\K.*(?=' is not part of the declared public API)" <<<"$out" | sort -u || true)
  [ -z "$symbols" ] && break
  { tail -n +2 "$file"; printf '%s\n' "$symbols"; } | sed '/^$/d' | sort -u > "$file.tmp"
  { echo '#nullable enable'; cat "$file.tmp"; } > "$file"; rm "$file.tmp"
done
