#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian 12 machine: system packages (when missing) and the pinned venv.
# Called by ./bridgecast before every command that needs them; a second run takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  ffmpeg fonts-dejavu-core                      # media toolkit (fonts with Vietnamese glyphs)
  nginx libnginx-mod-rtmp libnginx-mod-stream   # RTMP ingest + RTMPS for the fanpage sandbox
  postgresql                                    # Airflow metadata DB + publication ledger
  redis-server                                  # the Celery broker of `--executor celery`
  php-fpm php-mysql mariadb-server              # the real WordPress the portal contract suite runs against
  chromium chromium-driver                      # the upload page's browser test
  poppler-utils                                 # pdftoppm/pdftotext: the results report's PDF looked at in tests
  zbar-tools librsvg2-bin                       # zbarimg/rsvg-convert: the keys sheet's QR codes decoded in tests
  docker-compose                                # validates docker-compose.yml (no engine needed for `config`)
)
APT_LATE=(wordpress)   # after php-fpm, so apt does not pick Apache's mod-php for it

missing=()
for pkg in "${APT_PACKAGES[@]}" "${APT_LATE[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"
  $SUDO apt-get install -y -q --no-install-recommends "${APT_LATE[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
  "$PY" -m venv .venv
fi
lock_hash=$(sha256sum requirements.lock | cut -d' ' -f1)
if [ "$(cat .venv/.lock-hash 2>/dev/null)" != "$lock_hash" ]; then
  echo "setup: installing the pinned Python packages (requirements.lock)"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
  echo "$lock_hash" > .venv/.lock-hash
fi
