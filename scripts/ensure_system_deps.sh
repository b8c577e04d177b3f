#!/usr/bin/env bash
# Installs the system packages the test suite starts for real: a PostgreSQL server (profile
# mapping, query cancel, the end-to-end deployment's metadata DB), Redis (the broker of the
# end-to-end CeleryExecutor deployment) and Debian's Chromium (the end-to-end UI scenario drives it
# through Playwright; Playwright's own browser downloads do not work offline). Idempotent and
# quiet; needs root or sudo only when something is missing.
set -euo pipefail

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
[ -x /usr/bin/redis-server ] || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
