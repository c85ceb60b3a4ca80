# Sourced by scripts/test and scripts/attack: installs what the tests spawn or talk to (apt
# packages, the browser test's playwright-core, the Python peers in a venv of their own) and
# exports GEMBA_TEST_PYTHON. Runs from the repository root.

export PATH="$PATH:/usr/sbin:/sbin"
need_apt=()
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v mosquitto >/dev/null 2>&1 || need_apt+=(mosquitto)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)   # HTTPS with --cacert (crates/gemba/tests/security.rs), scripts/vendor
command -v patch >/dev/null 2>&1 || need_apt+=(patch)   # scripts/vendor check (scripts/test)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)   # the dashboard's browser test (crates/gemba/tests/dashboard.rs)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need_apt+=(fonts-wqy-microhei)   # 简体中文 in its screenshots
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)   # the Python test peers below
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v mosquitto_pub >/dev/null 2>&1 || { echo "mosquitto_pub is missing: apt-get install mosquitto-clients" >&2; exit 1; }
command -v mosquitto >/dev/null 2>&1 || { echo "the mosquitto broker is missing: apt-get install mosquitto" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "Chromium is missing: apt-get install chromium" >&2; exit 1; }
# playwright-core only (it drives the Chromium above; no browser download), pinned by package-lock.json.
npm ci --prefix web-tests --no-audit --no-fund

# Python peers (paho-mqtt, aiosmtpd), pinned in scripts/test-requirements.txt, in a venv of their own.
GEMBA_TEST_VENV="${GEMBA_TEST_VENV:-/var/tmp/gemba-test-venv}"
[ -x "$GEMBA_TEST_VENV/bin/python" ] || python3 -m venv "$GEMBA_TEST_VENV"
if ! cmp -s scripts/test-requirements.txt "$GEMBA_TEST_VENV/.requirements"; then
  "$GEMBA_TEST_VENV/bin/pip" install -q --disable-pip-version-check -r scripts/test-requirements.txt
  cp scripts/test-requirements.txt "$GEMBA_TEST_VENV/.requirements"
fi
export GEMBA_TEST_PYTHON="$GEMBA_TEST_VENV/bin/python"

