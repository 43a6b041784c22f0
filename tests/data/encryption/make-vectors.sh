#!/usr/bin/env bash
# Regenerates the stored-value fixtures in this directory with tools that share no code with
# kubeboot: the plaintext is a Secret protobuf assembled field by field (Python), aescbc is
# OpenSSL's `enc`, aesgcm is Python `cryptography` (OpenSSL) and secretbox is libsodium's
# crypto_secretbox_easy (through ctypes). Each stored value is what kube-apiserver writes to
# etcd: `k8s:enc:<provider>:v1:<key name>:` + IV/nonce + ciphertext (see src/encryption/).
# Fixed IVs/nonces make the output reproducible; run from anywhere: bash make-vectors.sh
set -euo pipefail
cd "$(dirname "$0")"

python3 - <<'PY'
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def ld(field, data):  # length-delimited field
    return varint(field << 3 | 2) + varint(len(data)) + data

def vi(field, n):  # varint field
    return varint(field << 3) + varint(n)

# api.core.v1.Secret: metadata=1 (ObjectMeta: name=1, namespace=3, uid=5,
# resourceVersion=6, creationTimestamp=8 {seconds=1}), data=2 (map entry key=1 value=2), type=3.
meta = (ld(1, b"db") + ld(3, b"default") + ld(5, b"6f1c2f0e-3b5a-4c1e-9d7a-0a1b2c3d4e5f")
        + ld(8, vi(1, 1700000000)))
secret = ld(1, meta) + ld(2, ld(1, b"password") + ld(2, b"hunter2")) + ld(3, b"Opaque")
# k8s\0 + runtime.Unknown: typeMeta=1 {apiVersion=1, kind=2}, raw=2, contentEncoding=3,
# contentType=4 (Go writes the empty strings too).
value = b"k8s\x00" + ld(1, ld(1, b"v1") + ld(2, b"Secret")) + ld(2, secret) + ld(3, b"") + ld(4, b"")
open("secret-db.plain", "wb").write(value)
PY

# aescbc, key "key1" = bytes 0x00..0x1f, IV = 0xa0..0xaf.
iv=a0a1a2a3a4a5a6a7a8a9aaabacadaeaf
{
  printf 'k8s:enc:aescbc:v1:key1:'
  printf '%s' "$iv" | xxd -r -p
  openssl enc -aes-256-cbc -K 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
    -iv "$iv" -in secret-db.plain
} > secret-db.aescbc

python3 - <<'PY'
import ctypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

plain = open("secret-db.plain", "rb").read()
etcd_key = b"/registry/secrets/default/db"  # the AAD: the etcd key the value is stored under

# aesgcm, key "gcm1" = bytes 0x20..0x2f (16 bytes), nonce = 0xb0..0xbb.
nonce = bytes(range(0xB0, 0xBC))
sealed = AESGCM(bytes(range(0x20, 0x30))).encrypt(nonce, plain, etcd_key)
open("secret-db.aesgcm", "wb").write(b"k8s:enc:aesgcm:v1:gcm1:" + nonce + sealed)

# secretbox, key "box1" = bytes 0x40..0x5f, nonce = 0xc0..0xd7.
sodium = ctypes.CDLL("libsodium.so.23")
assert sodium.sodium_init() >= 0
nonce = bytes(range(0xC0, 0xD8))
out = ctypes.create_string_buffer(len(plain) + 16)
assert sodium.crypto_secretbox_easy(out, plain, ctypes.c_ulonglong(len(plain)), nonce,
                                    bytes(range(0x40, 0x60))) == 0
open("secret-db.secretbox", "wb").write(b"k8s:enc:secretbox:v1:box1:" + nonce + out.raw)
PY
