#!/usr/bin/env bash
# Prepare this checkout: system packages (when root and missing) and the .venv.
# Idempotent: a no-op when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
# The clustered broker rtcc scales out on; the tests prove the contract over its MQTT side.
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need_apt+=(nats-server)
# A gateway's position source; the tests replay an NMEA log through gpsd's own gpsfake.
command -v gpsfake >/dev/null 2>&1 || need_apt+=(gpsd gpsd-clients)
# Browser tests drive Debian's Chromium (never a downloaded browser build).
[ -x /usr/lib/chromium/chromium ] || need_apt+=(chromium chromium-driver)
# The center's storage tests start their own cluster from Debian's PostgreSQL server binaries.
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || need_apt+=(postgresql)
# Browser libraries the center serves itself come from npm, pinned by package-lock.json.
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
# Another WebRTC stack (webrtcbin) for the interoperability tests, and a real RTSP server.
gst=(python3-gst-1.0 gir1.2-gst-plugins-bad-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-nice
     gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
     gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp)
for package in "${gst[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' ||
    need_apt+=("$package")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need_apt[*]} (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
    # Debian may start the packaged brokers on their default ports; rtcc and its tests run
    # their own on free ports.
  else
    echo "missing: ${need_apt[*]}; install them (e.g. sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

# No install scripts: the center only serves these files, and none of them may phone home.
npm_stamp=node_modules/.installed
if ! [ -f "$npm_stamp" ] || ! [ "$npm_stamp" -nt package-lock.json ]; then
  echo "installing browser libraries (npm ci, pinned by package-lock.json) ..."
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  touch "$npm_stamp"
fi

PYTHON="${PYTHON:-python3}"
stamp=.venv/.installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt constraints.txt ]; then
  exit 0
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "rtcc needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version))" >&2; exit 1; }
echo "preparing .venv (pinned by constraints.txt) ..."
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
log=.venv/install.log
if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip &&
       .venv/bin/python -m pip install --disable-pip-version-check -c constraints.txt \
         -e ".[dev,center]"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "pip install failed; full log in $log" >&2
  exit 1
fi
touch "$stamp"
