#!/usr/bin/env bash
# Installs the external tools the tests drive (DICOM toolkits, validators, node
# packages): Debian packages listed in apt-packages.txt, npm packages from
# package.json into tests/tools/node_modules. Idempotent; called by `make test`.
# Without root or apt-get, missing Debian packages are reported and the tests
# that need them skip with a clear reason. An optional argument names another
# package list (the benchmark's: bench/apt-packages.txt).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
packages="${1:-$here/apt-packages.txt}"

missing=()
while read -r package; do
    [[ -z "$package" || "$package" == \#* ]] && continue
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done < "$packages"
if ((${#missing[@]})); then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        echo "installing Debian packages for the tests: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    else
        echo "warning: missing Debian packages (tests needing them will skip): ${missing[*]}"
    fi
fi

if command -v npm >/dev/null && grep -q '"dependencies"' "$here/package.json"; then
    stamp="$here/node_modules/.installed"
    if [[ ! -f "$stamp" || "$here/package.json" -nt "$stamp" ]]; then
        npm install --prefix "$here" --no-audit --no-fund --loglevel=error >/dev/null
        touch "$stamp"
    fi
fi
