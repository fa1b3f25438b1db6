#!/bin/sh
# The release archive of one target, as the release workflow (ci/release.yml) makes it:
#   ci/package.sh BINARY TARGET OUT_DIR
# writes OUT_DIR/stepwise-TARGET.tar.gz (.zip for Windows) holding stepwise-TARGET/stepwise
# (stepwise.exe) and README.md, and OUT_DIR/ARCHIVE.sha256 ("HASH  ARCHIVE", as sha256sum
# prints it). install.sh downloads both and checks one against the other.
set -eu

[ $# -eq 3 ] || { echo "usage: ci/package.sh BINARY TARGET OUT_DIR" >&2; exit 2; }
binary="$1"
target="$2"
out="$3"
here="$(cd "$(dirname "$0")/.." && pwd)"
[ -f "$binary" ] || { echo "ci/package.sh: no binary at $binary" >&2; exit 1; }

case "$target" in
    *windows*) exe=stepwise.exe; archive="stepwise-$target.zip" ;;
    *) exe=stepwise; archive="stepwise-$target.tar.gz" ;;
esac

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT INT TERM
mkdir -p "$stage/stepwise-$target" "$out"
cp "$binary" "$stage/stepwise-$target/$exe"
chmod 755 "$stage/stepwise-$target/$exe"
cp "$here/README.md" "$stage/stepwise-$target/"

out="$(cd "$out" && pwd)"
rm -f "$out/$archive" "$out/$archive.sha256"
case "$archive" in
    *.zip)
        cd "$stage"
        if command -v 7z >/dev/null 2>&1; then
            7z a -tzip "$out/$archive" "stepwise-$target" >/dev/null
        else
            zip -qr "$out/$archive" "stepwise-$target"
        fi
        cd - >/dev/null
        ;;
    *) tar -C "$stage" -czf "$out/$archive" "stepwise-$target" ;;
esac
if command -v sha256sum >/dev/null 2>&1; then
    (cd "$out" && sha256sum "$archive" > "$archive.sha256")
else
    (cd "$out" && shasum -a 256 "$archive" > "$archive.sha256")
fi
echo "$out/$archive"
