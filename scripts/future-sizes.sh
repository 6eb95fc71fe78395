#!/usr/bin/env bash
# The service's largest futures, by type size (docs/design.md §10, "Request futures"). A
# future is copied whole when it is built, returned or boxed, so a large one on the request
# path costs every request. rustc prints every type's layout with -Zprint-type-sizes, a
# nightly flag that RUSTC_BOOTSTRAP lets the stable compiler take; the build goes to a target
# directory of its own (target/type-sizes, a full build the first time), since the flag
# changes every crate's fingerprint.
#
#   scripts/future-sizes.sh                  the 40 largest futures of the service's own code
#   TOP=100 FILTER='poem::' scripts/future-sizes.sh
#
# The release profile without LTO (layouts do not depend on it; the build is much faster).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOP=${TOP:-40}
FILTER=${FILTER:-'api::|participation::|consumer::|relay::|gate::|server::|campaign::'}
out=$ROOT/target/type-sizes/sizes.txt
mkdir -p "$ROOT/target/type-sizes"
# rustc prints the sizes only when it compiles the crate: its last build is removed first.
(cd "$ROOT" && cargo clean --release -p firstcome --target-dir "$ROOT/target/type-sizes" -q)
(cd "$ROOT" && CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  RUSTC_BOOTSTRAP=1 cargo rustc --release --lib --locked --target-dir "$ROOT/target/type-sizes" \
  -- -Zprint-type-sizes >"$out")
printf 'bytes\tfuture\n'
grep '^print-type-size type:' "$out" \
  | sed -E 's/^print-type-size type: `(.*)`: ([0-9]+) bytes.*/\2\t\1/' \
  | grep -P '^[0-9]+\t\{async (fn body of|block@)' \
  | grep -E "$FILTER" | sort -rn | uniq | head -n "$TOP" | cut -c1-220
