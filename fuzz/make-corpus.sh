#!/bin/bash
# fuzz/make-corpus.sh
#
# Regenerates what the fuzzers load and start from; its output is committed,
# so fuzzing never needs this script, the network or a particular date.
# Run it only to change the fixtures (then commit fuzz/pki and fuzz/corpus).
#
#   fuzz/pki/            a test PKI valid for 100 years (keys included: they
#                        are test keys and nothing else):
#     ca               self-signed CA, the issuer
#     leaf             the certificate every response is checked against,
#                      serial 0x1001, AIA http://127.0.0.1:1/ocsp
#     leaf2            another leaf (serial 0x1002), two AIA URLs
#     leaf3            a leaf without AIA
#     leaf4            a Must-Staple leaf (TLS Feature status_request)
#     signer           delegated responder (OCSPSigning), RSA
#     signer-ec        delegated responder (OCSPSigning), ECDSA P-256
#     signer-noeku     issued by the CA without OCSPSigning: must be refused
#     rogue            self-signed, unrelated to the CA: must be refused
#     chain.pem        leaf + ca: what fuzz_verify/fuzz_record parse at start
#   fuzz/corpus/fuzz_verify/*.der   real OCSP responses made by `openssl ocsp`
#                        (one-shot responder, -reqin) for leaf, see below
#   fuzz/corpus/fuzz_record/*.rec   encoded stapling records, written by
#                        `t/unit/replay_fuzz_record --write-seeds` from the
#                        responses above (the encoder of the module itself)
#   fuzz/corpus/fuzz_cert/*.pem     certificate PEM text as mod_ssl passes it
#
# The harnesses verify at a fixed time, FUZZ_NOW in fuzz/fuzz_common.h
# (2100-01-01): responses made with -ndays 36500 are valid then, the
# "expired" one (-ndays 1) is not; certificates are checked against the real
# clock by OpenSSL, hence their 100-year validity.
set -eu
set -o pipefail

FUZZ=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$FUZZ")
PKI=$FUZZ/pki
CV=$FUZZ/corpus/fuzz_verify
CR=$FUZZ/corpus/fuzz_record
CC_=$FUZZ/corpus/fuzz_cert
DAYS=36500

TMP=$(mktemp -d "${TMPDIR:-/tmp}/make-corpus.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cat > "$TMP/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
EOF
export OPENSSL_CONF=$TMP/openssl.cnf

rm -rf "$PKI" "$CV" "$CR" "$CC_"
mkdir -p "$PKI" "$CV" "$CR" "$CC_"

# ---- PKI ----------------------------------------------------------------
key() {
    case $2 in
        rsa) openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/$1.key" ;;
        ec)  openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$1.key" ;;
    esac
}
# cert NAME SUBJECT SERIAL EXT [ISSUER]: PKI/NAME.crt, extensions from EXT.
cert() {
    local name=$1 subj=$2 serial=$3 ext=$4 issuer=${5:-}
    printf '[ext]\n%b' "$ext" > "$TMP/$name.ext"
    openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$TMP/$name.csr"
    if [ -n "$issuer" ]; then
        openssl x509 -req -in "$TMP/$name.csr" -days $DAYS -sha256 \
            -CA "$PKI/$issuer.crt" -CAkey "$PKI/$issuer.key" -set_serial "$serial" \
            -extfile "$TMP/$name.ext" -extensions ext -out "$PKI/$name.crt" 2>/dev/null
    else
        openssl x509 -req -in "$TMP/$name.csr" -days $DAYS -sha256 \
            -signkey "$PKI/$name.key" -set_serial "$serial" \
            -extfile "$TMP/$name.ext" -extensions ext -out "$PKI/$name.crt" 2>/dev/null
    fi
}

for k in ca signer signer-noeku rogue; do key $k rsa; done
for k in leaf leaf2 leaf3 leaf4 signer-ec; do key $k ec; done

CA_EXT='basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n'
LEAF_EXT='basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n'
SIGNER_EXT='basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = OCSPSigning\nnoCheck = ignored\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n'
NOEKU_EXT='basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n'

cert ca           "/O=mod_ocspstaple fuzz/CN=Fuzz CA"        0x1000 "$CA_EXT"
cert leaf         "/CN=fuzz.test"                            0x1001 "${LEAF_EXT}subjectAltName = DNS:fuzz.test\nauthorityInfoAccess = OCSP;URI:http://127.0.0.1:1/ocsp\n" ca
cert leaf2        "/CN=fuzz2.test/O=Two URLs"                0x1002 "${LEAF_EXT}authorityInfoAccess = OCSP;URI:http://127.0.0.1:1/a,OCSP;URI:https://ocsp.invalid/b,caIssuers;URI:http://127.0.0.1:1/ca.crt\n" ca
cert leaf3        "/CN=fuzz3.test"                           0x1003 "$LEAF_EXT" ca
cert leaf4        "/CN=fuzz4.test"                           0x1008 "${LEAF_EXT}tlsfeature = status_request\nauthorityInfoAccess = OCSP;URI:http://127.0.0.1:1/ocsp\n" ca
cert signer       "/O=mod_ocspstaple fuzz/CN=OCSP signer"    0x1004 "$SIGNER_EXT" ca
cert signer-ec    "/O=mod_ocspstaple fuzz/CN=OCSP signer EC" 0x1005 "$SIGNER_EXT" ca
cert signer-noeku "/O=mod_ocspstaple fuzz/CN=No OCSPSigning" 0x1006 "$NOEKU_EXT" ca
cert rogue        "/O=Somebody else/CN=Rogue"                0x1007 "${SIGNER_EXT%%authorityKeyIdentifier*}"
cat "$PKI/leaf.crt" "$PKI/ca.crt" > "$PKI/chain.pem"

# `openssl ca` indexes: status, expiry, revocation, serial, file, subject.
END=$(openssl x509 -in "$PKI/leaf.crt" -noout -enddate | sed 's/^notAfter=//')
END=$(TZ=UTC date -d "$END" +%Y%m%d%H%M%SZ)
REV="$(TZ=UTC date -d '1 hour ago' +%y%m%d%H%M%SZ),keyCompromise"
row() { printf '%s\t%s\t%s\t%s\tunknown\t%s\n' "$1" "$END" "$2" "$3" "$4"; }
{ row V "" 1001 /CN=fuzz.test; row V "" 1002 /CN=fuzz2.test; row V "" 1003 /CN=fuzz3.test; } > "$TMP/index.txt"
{ row R "$REV" 1001 /CN=fuzz.test; row V "" 1002 /CN=fuzz2.test; } > "$TMP/index-revoked.txt"
{ row V "" 1002 /CN=fuzz2.test; } > "$TMP/index-unknown.txt"
for i in index index-revoked index-unknown; do echo "unique_subject = no" > "$TMP/$i.txt.attr"; done

# ---- requests -----------------------------------------------------------
req() {   # req NAME OPTIONS...
    local name=$1; shift
    openssl ocsp -issuer "$PKI/ca.crt" "$@" -reqout "$TMP/$name.req" >/dev/null
}
req leaf   -cert "$PKI/leaf.crt" -no_nonce
req leaf2  -cert "$PKI/leaf2.crt" -no_nonce
req multi  -cert "$PKI/leaf.crt" -cert "$PKI/leaf2.crt" -no_nonce
req nonce  -cert "$PKI/leaf.crt"
req sha256 -sha256 -cert "$PKI/leaf.crt" -no_nonce

# ---- responses ----------------------------------------------------------
# resp OUT REQUEST SIGNER INDEX [OPTIONS...]: CV/OUT.der
resp() {
    local out=$1 rq=$2 signer=$3 index=$4; shift 4
    ${RESP_PREFIX:-} openssl ocsp -index "$TMP/$index.txt" -CA "$PKI/ca.crt" \
        -rsigner "$PKI/$signer.crt" -rkey "$PKI/$signer.key" \
        -reqin "$TMP/$rq.req" -respout "$CV/$out.der" "$@" >"$TMP/$out.log" 2>&1 \
        || { cat "$TMP/$out.log" >&2; echo "make-corpus: $out.der failed" >&2; exit 1; }
}
resp good             leaf   ca           index         -ndays $DAYS -resp_no_certs
resp good-certs       leaf   ca           index         -ndays $DAYS
resp good-keyid       leaf   ca           index         -ndays $DAYS -resp_no_certs -resp_key_id
resp good-nonce       nonce  ca           index         -ndays $DAYS -resp_no_certs
resp good-sha256id    sha256 ca           index         -ndays $DAYS -resp_no_certs
# No nextUpdate: valid OCSP_NO_NEXT_UPDATE_MAX_AGE (1 h) from thisUpdate, so
# the one that must verify at FUZZ_NOW is signed half an hour before it;
# nonext-old (signed now) is refused there for its age.
RESP_PREFIX="faketime 2099-12-31T23:30:00" resp nonext leaf ca index -resp_no_certs
resp nonext-old       leaf   ca           index         -resp_no_certs
resp expired          leaf   ca           index         -ndays 1 -resp_no_certs
resp revoked          leaf   ca           index-revoked -ndays $DAYS -resp_no_certs
resp unknown          leaf   ca           index-unknown -ndays $DAYS -resp_no_certs
resp delegated        leaf   signer       index         -ndays $DAYS
resp delegated-ec     leaf   signer-ec    index         -ndays $DAYS
resp delegated-nocert leaf   signer       index         -ndays $DAYS -resp_no_certs
resp delegated-noeku  leaf   signer-noeku index         -ndays $DAYS
resp wrongsigner      leaf   rogue        index         -ndays $DAYS
resp wrongserial      leaf2  ca           index         -ndays $DAYS -resp_no_certs
resp multi            multi  ca           index         -ndays $DAYS -resp_no_certs
# Signature BIT STRING ends the DER without certificates: flip its last byte.
perl -e 'local $/; my $d = <STDIN>; substr($d, -1, 1) ^= "\x01"; print $d' \
    < "$CV/good.der" > "$CV/badsig.der"
# OCSPResponse { responseStatus } without responseBytes, one per status
# (4 is not defined by RFC 6960).
st=0
for name in nobody malformedrequest internalerror trylater status4 sigrequired unauthorized; do
    printf "\\x30\\x03\\x0a\\x01\\x0$st" > "$CV/$name.der"
    st=$((st + 1))
done

# ---- certificates -------------------------------------------------------
cp "$PKI/chain.pem" "$CC_/chain.pem"
cat "$PKI/leaf2.crt" "$PKI/ca.crt" > "$CC_/two-urls.pem"
cat "$PKI/leaf3.crt" "$PKI/ca.crt" > "$CC_/no-aia.pem"
cat "$PKI/leaf4.crt" "$PKI/ca.crt" > "$CC_/must-staple.pem"
cat "$PKI/leaf.crt" "$PKI/rogue.crt" > "$CC_/wrong-issuer.pem"
cat "$PKI/leaf.crt" "$PKI/ca.crt" "$PKI/signer.crt" > "$CC_/three.pem"
cp "$PKI/leaf.crt" "$CC_/leaf-only.pem"
cat "$PKI/leaf.key" "$PKI/leaf.crt" "$PKI/ca.crt" > "$CC_/key-first.pem"

# ---- records: the module's own encoder ---------------------------------
make -C "$ROOT" --no-print-directory t/unit/replay_fuzz_record >/dev/null
"$ROOT/t/unit/replay_fuzz_record" --write-seeds "$CR"

echo "make-corpus: $(ls "$CV" | wc -l) responses, $(ls "$CR" | wc -l) records," \
     "$(ls "$CC_" | wc -l) certificate files; PKI in $PKI"
