#!/usr/bin/env bash
# Test dependencies that pip cannot install: Debian's Chromium (browser tests),
# nginx and caddy (forward-auth gateway tests) and the npm packages of the cross-language tests. Best effort on a user's
# machine (the tests that need them skip with a message); CI sets
# JOTKIT_STRICT_SERVICES=1 and then a failure here fails the run.
set -u
strict="${JOTKIT_STRICT_SERVICES:-0}"
fail() { echo "setup-test-deps: $*" >&2; [ "$strict" = "1" ] && exit 1; }

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || fail "could not install chromium (apt-get install chromium)"
  else
    fail "chromium is missing: apt-get install chromium (browser tests will skip)"
  fi
fi

# nginx and caddy for tests/edge (the gateway tests start their own; the Debian
# packages' services are not used). Debian installs nginx in /usr/sbin.
for pkg in nginx caddy; do
  if ! command -v "$pkg" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$pkg" ] && [ ! -x "/usr/bin/$pkg" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing Debian's $pkg for the gateway tests"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null) \
        || fail "could not install $pkg (apt-get install $pkg)"
    else
      fail "$pkg is missing: apt-get install $pkg (gateway tests will skip)"
    fi
  fi
done

if [ -f tests/node/package.json ]; then
  if command -v npm >/dev/null 2>&1; then
    if [ ! -d tests/node/node_modules ] || [ tests/node/package-lock.json -nt tests/node/node_modules ]; then
      echo "installing the npm packages of the cross-language tests"
      (cd tests/node && npm ci --no-audit --no-fund --silent) || fail "npm ci in tests/node failed"
    fi
  else
    fail "node/npm are missing: install Node.js >= 18 (cross-language tests will skip)"
  fi
fi
exit 0
