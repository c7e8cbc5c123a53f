#!/bin/bash
# mkfixtures.sh PKIDIR OUTDIR
#
# Saved OCSP responses for t/unit/test_ocsp_fetch, made with `openssl ocsp`
# as a one-shot responder over a PKI from scripts/mkpki.sh. Every file is
# rewritten on each run (idempotent); a run takes well under a second.
#
#   good.der            rsa: good, signed by the intermediate, no certs
#   ecdsa.der           ecdsa: good, signed by the intermediate
#   revoked.der         revoked: revoked (keyCompromise)
#   unknown.der         noaia: unknown (its entry is left out of the index)
#   nonext.der          rsa: good, without nextUpdate
#   delegated.der       delegated: good, signed by ocsp-signer (cert included)
#   delegated-noeku.der delegated: signed by ocsp-signer-noeku (no OCSPSigning)
#   wrongsigner.der     rsa: signed by the unrelated rogue cert (included)
#   rootsigned.der      rsa: signed by the root CA, not the issuer (included)
#   wrongserial.der     sni2's answer (tests use it against rsa)
#   badsig.der          good.der with the last signature byte flipped
#   trylater.der        OCSPResponse {tryLater}, no body: 30 03 0A 01 03
#   internalerror.der   OCSPResponse {internalError}: 30 03 0A 01 02
#   nobody.der          OCSPResponse {successful} without responseBytes
#   garbage.der         512 pseudo-random bytes (deterministic)
#   empty.der           0 bytes
#   truncated.der       the first half of good.der
#
# Validity: thisUpdate is the time of the run, nextUpdate one day later.
set -eu
set -o pipefail

[ $# -eq 2 ] || { echo "usage: $0 PKIDIR OUTDIR" >&2; exit 2; }
PKI=$1
OUT=$2
for f in index.txt intermediate.crt intermediate.key requests/rsa.der; do
    [ -f "$PKI/$f" ] || { echo "mkfixtures: $PKI/$f missing (run scripts/mkpki.sh)" >&2; exit 1; }
done
mkdir -p "$OUT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mkfixtures.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# resp OUT REQ SIGNER [INDEX] [ARGS...]: OUT.der answers requests/REQ.der,
# signed by PKIDIR/SIGNER.{crt,key}. Written to a temp name, then renamed.
resp() {
    local out=$1 req=$2 signer=$3 index=$4; shift 4
    openssl ocsp -index "$index" -CA "$PKI/intermediate.crt" \
        -rsigner "$PKI/$signer.crt" -rkey "$PKI/$signer.key" \
        -reqin "$PKI/requests/$req.der" -respout "$TMP/$out.der" "$@" \
        >"$TMP/$out.log" 2>&1 \
        || { cat "$TMP/$out.log" >&2; echo "mkfixtures: $out.der failed" >&2; exit 1; }
    [ -s "$TMP/$out.der" ] || { echo "mkfixtures: $out.der is empty" >&2; exit 1; }
    mv -f "$TMP/$out.der" "$OUT/$out.der"
}

IDX=$PKI/index.txt
# An index without noaia's entry: the responder then answers "unknown".
grep -v '/CN=noaia\.test$' "$IDX" > "$TMP/index-unknown.txt"
[ -f "$PKI/index.txt.attr" ] && cp "$PKI/index.txt.attr" "$TMP/index-unknown.txt.attr"

resp good            rsa       intermediate      "$IDX" -ndays 1 -resp_no_certs
resp ecdsa           ecdsa     intermediate      "$IDX" -ndays 1 -resp_no_certs
resp revoked         revoked   intermediate      "$IDX" -ndays 1 -resp_no_certs
resp unknown         noaia     intermediate      "$TMP/index-unknown.txt" -ndays 1 -resp_no_certs
resp nonext          rsa       intermediate      "$IDX" -resp_no_certs
resp delegated       delegated ocsp-signer       "$IDX" -ndays 1
resp delegated-noeku delegated ocsp-signer-noeku "$IDX" -ndays 1
resp wrongsigner     rsa       rogue             "$IDX" -ndays 1
resp rootsigned      rsa       root              "$IDX" -ndays 1
resp wrongserial     sni2      intermediate      "$IDX" -ndays 1 -resp_no_certs

# With -resp_no_certs the signature BIT STRING ends the DER: flip its last byte.
perl -e 'local $/; my $d = <STDIN>; substr($d, -1, 1) ^= "\x01"; print $d' \
    < "$OUT/good.der" > "$TMP/badsig.der"
mv -f "$TMP/badsig.der" "$OUT/badsig.der"

printf '\x30\x03\x0a\x01\x03' > "$OUT/trylater.der"
printf '\x30\x03\x0a\x01\x02' > "$OUT/internalerror.der"
printf '\x30\x03\x0a\x01\x00' > "$OUT/nobody.der"
# Same bytes every run, so a failure reproduces.
head -c 512 /dev/zero | openssl enc -aes-128-ctr -nosalt \
    -K 000102030405060708090a0b0c0d0e0f -iv 00000000000000000000000000000000 \
    > "$OUT/garbage.der"
: > "$OUT/empty.der"
size=$(wc -c < "$OUT/good.der")
head -c $((size / 2)) "$OUT/good.der" > "$OUT/truncated.der"

echo "mkfixtures: responses in $OUT"
