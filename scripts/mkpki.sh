#!/bin/bash
# mkpki.sh DIR PORT [SET...]
#
# Builds a throw-away test PKI for mod_ocspstaple in DIR (wiped first):
#
#   root (RSA) -> intermediate (RSA) -> leaves (one per test scenario)
#                                    -> ocsp-signer        (delegated responder)
#                                    -> ocsp-signer-noeku  (lacks OCSPSigning)
#   rogue (self-signed, unrelated)
#
# The leaves named in MUST_STAPLE (below) also carry the TLS Feature
# extension status_request (RFC 7633, "OCSP Must-Staple").
#
# PORT is the loopback port of scripts/ocsp_responder.pl; it is baked into
# the leaves' AIA OCSP URLs (http://127.0.0.1:PORT/<mode>), the path selecting
# how the responder answers. Also writes an `openssl ca`-style index.txt
# (for `openssl ocsp -index`) and one ready-made OCSP request per leaf in
# DIR/requests/NAME.der.
#
# Files per leaf NAME: NAME.key, NAME.pem (leaf only), NAME.crt (leaf +
# intermediate: what SSLCertificateFile gets, so mod_ssl finds the issuer).
#
# Optional SETs add leaves (ECDSA P-256, so they cost little time) after the
# usual ones, whose files and serials stay the same:
#   faults  one leaf per fault mode of scripts/ocsp_responder.pl (listed in
#           FAULT_MODES below): f-MODE, CN=f-MODE.test, AIA .../MODE
#           (t/40-fault-responder.t, t/41-fault-renew.t)
#   badaia  leaves whose AIA OCSP URL cannot work (t/42-bad-aia.t):
#           aia-ldap      ldap://127.0.0.1/cn=ocsp (not http)
#           aia-broken    http//broken (malformed: no "://")
#           aia-nxdomain  http://nonexistent.invalid/ (never resolves, RFC 6761)
#           aia-mixed     ldap://127.0.0.1/cn=ocsp, then .../good
#   responder  responder transports (t/67-responder-transport.t):
#           responder-tls  the TLS server certificate of an HTTPS responder
#                          (ocsp_responder.pl --tls): SAN IP:127.0.0.1,
#                          IP:::1, DNS:localhost; no AIA
#           v6aia          AIA http://[::1]:PORT/good (an IPv6 responder)
#
# MKPKI_REUSE=SRC (an earlier PKI made by this script, e.g. the suite's
# t/pki): its keys, CA and signer certificates and ready-made requests are
# copied instead of made again; only the leaves, whose AIA URLs name PORT,
# are signed anew. Key generation is most of the cost, and `make test` builds
# a PKI per scenario: sharing one set of keys per run saves minutes of CPU.
# A file SRC lacks (the optional sets' leaves) is made as usual.
#
# Non-interactive, no root needed, a few seconds (keys are generated in
# parallel; under a second with MKPKI_REUSE). Uses its own minimal openssl
# config so the system's /etc/ssl/openssl.cnf cannot add surprise extensions.
set -eu
set -o pipefail

usage() { echo "usage: $0 DIR PORT [faults] [badaia] [responder]" >&2; exit 2; }
[ $# -ge 2 ] || usage
DIR=$1
PORT=$2
shift 2
SETS="$*"
case $PORT in ''|*[!0-9]*) usage ;; esac
for set in $SETS; do
    case $set in faults|badaia|responder) ;; *) usage ;; esac
done

REUSE=${MKPKI_REUSE:-}
[ -z "$REUSE" ] || [ -f "$REUSE/root.crt" ] || { echo "mkpki: MKPKI_REUSE=$REUSE is no PKI" >&2; exit 2; }

LEAF_DAYS=30      # short-lived leaves, like real-world server certs
CA_DAYS=3650

rm -rf "$DIR"
mkdir -p "$DIR/requests" "$DIR/tmp"
DIR=$(cd "$DIR" && pwd)      # absolute: index.txt and callers want stable paths
TMP=$DIR/tmp

# A minimal config: `openssl req` insists on a [req] section with a
# distinguished_name; -subj supplies the actual name.
cat > "$TMP/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
EOF
export OPENSSL_CONF=$TMP/openssl.cnf

# Serials must be distinct across the whole PKI: openssl ocsp looks the
# status up by serial, and the wrongserial tests rely on leaves differing.
NEXT_SERIAL=4096   # 0x1000
next_serial() { NEXT_SERIAL=$((NEXT_SERIAL + 1)); }

die() { echo "mkpki: $*" >&2; exit 1; }

# reuse FILE: copies MKPKI_REUSE's FILE into DIR; false when there is none.
reuse() { [ -n "$REUSE" ] && [ -f "$REUSE/$1" ] && cp "$REUSE/$1" "$DIR/$1"; }

# ---- keys ---------------------------------------------------------------
# newkey NAME rsa|ec : writes DIR/NAME.key (PKCS#8 PEM, unencrypted).
newkey() {
    reuse "$1.key" && return 0
    case $2 in
        rsa) openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
                 -out "$DIR/$1.key" ;;
        ec)  openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
                 -out "$DIR/$1.key" ;;
    esac
}

# ---- signing ------------------------------------------------------------
# sign NAME SUBJECT DAYS EXTFILE [ISSUER]: CSR from NAME.key, certificate
# NAME.pem signed by ISSUER (ISSUER.crt/.key), or self-signed without ISSUER.
# Extensions come only from EXTFILE (section "ext").
sign() {
    local name=$1 subj=$2 days=$3 ext=$4 issuer=${5:-}
    openssl req -new -key "$DIR/$name.key" -subj "$subj" -out "$TMP/$name.csr"
    next_serial
    if [ -n "$issuer" ]; then
        openssl x509 -req -in "$TMP/$name.csr" -days "$days" -sha256 \
            -CA "$DIR/$issuer.crt" -CAkey "$DIR/$issuer.key" \
            -set_serial "$NEXT_SERIAL" -extfile "$ext" -extensions ext \
            -out "$DIR/$name.pem" 2>/dev/null
    else
        openssl x509 -req -in "$TMP/$name.csr" -days "$days" -sha256 \
            -signkey "$DIR/$name.key" \
            -set_serial "$NEXT_SERIAL" -extfile "$ext" -extensions ext \
            -out "$DIR/$name.pem" 2>/dev/null
    fi
}

# ---- one function per kind of certificate -------------------------------

make_root() {
    cat > "$TMP/root.ext" <<'EOF'
[ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
    sign root "/O=mod_ocspstaple test/CN=Test Root CA" $CA_DAYS "$TMP/root.ext"
    mv "$DIR/root.pem" "$DIR/root.crt"
}

make_intermediate() {
    cat > "$TMP/intermediate.ext" <<'EOF'
[ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    sign intermediate "/O=mod_ocspstaple test/CN=Test Intermediate CA" $CA_DAYS \
        "$TMP/intermediate.ext" root
    mv "$DIR/intermediate.pem" "$DIR/intermediate.crt"
}

# make_ocsp_signer NAME yes|no : a delegated responder certificate issued by
# the intermediate. With "no" it lacks the OCSPSigning EKU, so a correct
# client must reject responses it signs (RFC 6960 4.2.2.2).
make_ocsp_signer() {
    local name=$1 eku=$2
    {
        echo "[ext]"
        echo "basicConstraints = critical,CA:FALSE"
        echo "keyUsage = critical,digitalSignature"
        [ "$eku" = yes ] && echo "extendedKeyUsage = OCSPSigning"
        # id-pkix-ocsp-nocheck: clients need not check the signer's own status.
        echo "noCheck = ignored"
        echo "subjectKeyIdentifier = hash"
        echo "authorityKeyIdentifier = keyid:always"
    } > "$TMP/$name.ext"
    sign "$name" "/O=mod_ocspstaple test/CN=$name" $CA_DAYS "$TMP/$name.ext" intermediate
    mv "$DIR/$name.pem" "$DIR/$name.crt"
}

# A self-signed cert unrelated to the PKI: signs "wrong signer" responses.
make_rogue() {
    cat > "$TMP/rogue.ext" <<'EOF'
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning
subjectKeyIdentifier = hash
EOF
    sign rogue "/O=Somebody else/CN=Rogue OCSP signer" $CA_DAYS "$TMP/rogue.ext"
    mv "$DIR/rogue.pem" "$DIR/rogue.crt"
}

# make_leaf NAME SAN URL... : a TLS server certificate issued by the
# intermediate, CN=NAME.test, SAN as given ("DNS:a,DNS:b"), one AIA OCSP
# entry per URL in the given order (none when no URL is given); Must-Staple
# when NAME is listed in MUST_STAPLE.
make_leaf() {
    local name=$1 san=$2; shift 2
    local aia="" url
    for url in "$@"; do
        aia="${aia:+$aia,}OCSP;URI:$url"
    done
    {
        echo "[ext]"
        echo "basicConstraints = critical,CA:FALSE"
        echo "keyUsage = critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage = serverAuth"
        echo "subjectAltName = $san"
        [ -n "$aia" ] && echo "authorityInfoAccess = $aia"
        case " $MUST_STAPLE " in
            *" $name "*) echo "tlsfeature = status_request" ;;
        esac
        echo "subjectKeyIdentifier = hash"
        echo "authorityKeyIdentifier = keyid:always"
    } > "$TMP/$name.ext"
    sign "$name" "/CN=$name.test" $LEAF_DAYS "$TMP/$name.ext" intermediate
    cat "$DIR/$name.pem" "$DIR/intermediate.crt" > "$DIR/$name.crt"
}

# index_entry NAME V|R : one line of an `openssl ca` index (tab-separated):
#   status, expiry (YYMMDDHHMMSSZ), revocation date (empty unless R),
#   serial (hex, as openssl prints it), file name ("unknown"), subject.
index_entry() {
    local name=$1 status=$2 serial end revdate=""
    { read -r serial; read -r end; } < <(openssl x509 -in "$DIR/$name.pem" -noout -serial -enddate)
    serial=${serial#serial=}
    end=${end#notAfter=}
    end=$(TZ=UTC date -d "$end" +%y%m%d%H%M%SZ)
    # Revoked an hour ago, reason keyCompromise (shows up in -resp_text).
    [ "$status" = R ] && revdate="$(TZ=UTC date -d '1 hour ago' +%y%m%d%H%M%SZ),keyCompromise"
    printf '%s\t%s\t%s\t%s\tunknown\t/CN=%s.test\n' \
        "$status" "$end" "$revdate" "$serial" "$name" >> "$DIR/index.txt"
}

# ---- main ---------------------------------------------------------------

# name : key type : SAN : AIA URLs (space separated; "-" for none)
BASE="http://127.0.0.1:$PORT"
LEAVES="
rsa         rsa DNS:rsa.test                  $BASE/good
ecdsa       ec  DNS:rsa.test,DNS:ecdsa.test   $BASE/good
sni2        rsa DNS:sni2.test                 $BASE/good
revoked     rsa DNS:revoked.test              $BASE/good
noaia       rsa DNS:noaia.test                -
wrongsigner rsa DNS:wrongsigner.test          $BASE/wrongsigner
wrongserial rsa DNS:wrongserial.test          $BASE/wrongserial
delegated   rsa DNS:delegated.test            $BASE/delegated
twourls     rsa DNS:twourls.test              http://127.0.0.1:1/dead $BASE/good
offvhost    rsa DNS:offvhost.test             $BASE/good
forced      rsa DNS:forced.test               $BASE/wrongserial
muststaple  rsa DNS:muststaple.test           $BASE/good
muststaple_off rsa DNS:muststaple_off.test    $BASE/good
"
# Leaves with the TLS Feature status_request (Must-Staple). New leaves go at
# the end of LEAVES: serials are handed out in order.
MUST_STAPLE="muststaple muststaple_off"

# The optional sets, appended after the usual leaves (so those keep their
# serials). Keep FAULT_MODES in step with the modes of ocsp_responder.pl.
FAULT_MODES="hang close slow http500 http404 redirect wrongtype empty garbage
             truncated huge hugestream otherserial wrongsigner noeku expired
             future nonext unknown trylater internalerror malformedrequest
             sigrequired unauthorized multi revoked"
for set in $SETS; do
    case $set in
    faults)
        for mode in $FAULT_MODES; do
            LEAVES="$LEAVES
f-$mode ec DNS:f-$mode.test $BASE/$mode"
        done ;;
    badaia)
        LEAVES="$LEAVES
aia-ldap     ec DNS:aia-ldap.test     ldap://127.0.0.1/cn=ocsp
aia-broken   ec DNS:aia-broken.test   http//broken
aia-nxdomain ec DNS:aia-nxdomain.test http://nonexistent.invalid/
aia-mixed    ec DNS:aia-mixed.test    ldap://127.0.0.1/cn=ocsp $BASE/good
" ;;
    responder)
        LEAVES="$LEAVES
responder-tls ec IP:127.0.0.1,IP:::1,DNS:localhost -
v6aia         ec DNS:v6aia.test                   http://[::1]:$PORT/good
" ;;
    esac
done

# RSA key generation dominates the run time: do all keys in parallel.
pids=""
for n in root intermediate ocsp-signer ocsp-signer-noeku rogue; do
    newkey "$n" rsa & pids="$pids $!"
done
while read -r name kt _; do
    [ -n "$name" ] || continue
    newkey "$name" "$kt" & pids="$pids $!"
done <<< "$LEAVES"
for p in $pids; do wait "$p" || die "key generation failed"; done

# ca_cert NAME MAKER...: NAME.crt from MKPKI_REUSE (its serial is still
# counted, so the leaves' serials stay the same), or made by MAKER.
ca_cert() {
    local name=$1; shift
    if reuse "$name.crt"; then next_serial; else "$@"; fi
}
ca_cert root make_root
ca_cert intermediate make_intermediate
ca_cert ocsp-signer make_ocsp_signer ocsp-signer yes
ca_cert ocsp-signer-noeku make_ocsp_signer ocsp-signer-noeku no
ca_cert rogue make_rogue

: > "$DIR/index.txt"
# Our index never needs unique subjects; saying so silences openssl warnings.
echo "unique_subject = no" > "$DIR/index.txt.attr"
while read -r name kt san urls; do
    [ -n "$name" ] || continue
    if [ "$urls" = - ]; then
        make_leaf "$name" "$san"
    else
        # shellcheck disable=SC2086  # URLs are space-separated on purpose
        make_leaf "$name" "$san" $urls
    fi
    if [ "$name" = revoked ]; then index_entry "$name" R; else index_entry "$name" V; fi
    # A request without nonce, as mod_ocspstaple sends (and as the responder's
    # wrongserial mode replays requests/sni2.der).
    # (Same serial, same issuer: MKPKI_REUSE's request is this one.)
    reuse "requests/$name.der" ||
        openssl ocsp -issuer "$DIR/intermediate.crt" -cert "$DIR/$name.pem" \
            -no_nonce -reqout "$DIR/requests/$name.der" >/dev/null
done <<< "$LEAVES"

# Fail loudly if any chain is broken (one openssl run checks them all).
chains=("$DIR/ocsp-signer.crt" "$DIR/ocsp-signer-noeku.crt")
while read -r name _; do
    [ -n "$name" ] && chains+=("$DIR/$name.pem")
done <<< "$LEAVES"
openssl verify -CAfile "$DIR/root.crt" -untrusted "$DIR/intermediate.crt" \
    "${chains[@]}" >"$TMP/verify.out" 2>&1 || die "a chain does not verify: $(grep -v ': OK$' "$TMP/verify.out")"

rm -rf "$TMP"
echo "mkpki: PKI in $DIR (OCSP port $PORT)"
