#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/system-deps.txt that are not installed yet. Needs root
# (CI runs as root); otherwise prints the apt-get command to run and carries on (the tests that need a
# missing package say so and skip).
set -uo pipefail
cd "$(dirname "$0")/.."
missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done < scripts/system-deps.txt
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "system-deps: missing ${missing[*]}; run: sudo apt-get install ${missing[*]}" >&2
fi
exit 0
