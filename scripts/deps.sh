#!/bin/sh
# scripts/deps.sh [EXTRA-PACKAGE...]
# scripts/deps.sh --deb
#
# Installs the Debian packages mod_ocspstaple needs to build, test and demo,
# plus any named on the command line (what a single make target needs on
# top: `make fuzz` passes clang and libclang-rt-dev, `make test-asan` those
# and valgrind). Does nothing when they are all present; needs root (or sudo)
# otherwise.
# --deb (`make deb`): only what building the Debian package takes, its
# Build-Depends (debian/control) and the tools around dpkg-buildpackage, not
# the test suite's servers and clients.
set -eu

# redis-server and memcached: the fleet tests share a cache through them
# (started by the tests on 127.0.0.1 only, never as system services).
# faketime: the fault-injection responder signs expired and not-yet-valid
# OCSP responses by running `openssl ocsp` under a shifted clock.
# gnutls-bin and libnss3-tools: t/16-other-clients.t checks staples with
# gnutls-cli (GnuTLS) and tstclnt (NSS), TLS clients nobody here wrote;
# t/62-muststaple.t shows gnutls-cli refusing a Must-Staple certificate
# without a staple.
# libio-socket-ssl-perl: the test responder's HTTPS mode
# (ocsp_responder.pl --tls, t/67-responder-transport.t).
# prometheus: its promtool checks the metrics page, the alert rules and the
# scrape configuration (t/69-prometheus.t); no Prometheus server is started.
PACKAGES="apache2 apache2-dev libssl-dev libcurl4-openssl-dev openssl curl
          libapache2-mod-perl2 perl make gcc redis-server memcached faketime
          gnutls-bin libnss3-tools libio-socket-ssl-perl prometheus $*"
# apache2-dev has dh_apache2 (and Provides: dh-apache2, the name
# debian/control asks for). git: `make deb` copies the checkout's files.
if [ "${1:-}" = --deb ]; then
    PACKAGES="apache2-dev libssl-dev libcurl4-openssl-dev make gcc git
              dpkg-dev debhelper fakeroot lintian"
fi

missing=""
for pkg in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
        || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# A temporary policy-rc.d keeps the install from starting the system apache2
# service: this project only ever runs private servers of its own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    $SUDO sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends $missing
