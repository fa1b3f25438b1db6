#!/bin/sh
# Installs stepwise from a GitHub release: downloads the archive for this machine, checks its
# SHA-256 checksum, and puts the binary into ~/.local/bin (or the folder you choose).
#
#   curl -fsSL https://github.com/stepwise-dev/stepwise/releases/latest/download/install.sh | sh
#   curl -fsSL .../install.sh | sh -s -- --version v0.2.0 --prefix /usr/local
#
# Options:
#   --version TAG    the release (default: latest)
#   --prefix DIR     install into DIR/bin (default: ~/.local)
#   --bin-dir DIR    install into DIR exactly (overrides --prefix)
#   --target TRIPLE  the archive to take (default: this machine's, e.g.
#                    x86_64-unknown-linux-musl, aarch64-apple-darwin)
# Environment:
#   STEPWISE_RELEASES  where releases are downloaded from (default:
#                      https://github.com/stepwise-dev/stepwise/releases; a mirror, or a
#                      local server in tests): FILE of TAG is at $STEPWISE_RELEASES/download/TAG/FILE,
#                      of the latest release at $STEPWISE_RELEASES/latest/download/FILE.
# Exit status: 0 installed; 1 download, checksum or install failed (nothing installed);
# 2 bad usage or an unsupported machine.
set -eu

releases="${STEPWISE_RELEASES:-https://github.com/stepwise-dev/stepwise/releases}"
version=latest
prefix="${HOME:-}/.local"
bin_dir=""
target=""

say() { printf 'install.sh: %s\n' "$*" >&2; }
fail() { say "error: $1"; exit "${2:-1}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --version) [ $# -ge 2 ] || fail "--version needs a TAG" 2; version="$2"; shift 2 ;;
        --prefix) [ $# -ge 2 ] || fail "--prefix needs a DIR" 2; prefix="$2"; shift 2 ;;
        --bin-dir) [ $# -ge 2 ] || fail "--bin-dir needs a DIR" 2; bin_dir="$2"; shift 2 ;;
        --target) [ $# -ge 2 ] || fail "--target needs a TRIPLE" 2; target="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0" 2>/dev/null || true; exit 0 ;;
        *) fail "unknown option $1 (see the top of install.sh)" 2 ;;
    esac
done
[ -n "$bin_dir" ] || bin_dir="$prefix/bin"

# This machine's target triple.
detect_target() {
    os="$(uname -s)"
    arch="$(uname -m)"
    case "$arch" in
        x86_64|amd64) arch=x86_64 ;;
        aarch64|arm64) arch=aarch64 ;;
        *) fail "no stepwise release for the $arch processor (build it: cargo install --locked stepwise)" 2 ;;
    esac
    case "$os" in
        Linux) echo "$arch-unknown-linux-musl" ;;
        Darwin) echo "$arch-apple-darwin" ;;
        MINGW*|MSYS*|CYGWIN*) echo "x86_64-pc-windows-msvc" ;;
        *) fail "no stepwise release for $os (build it: cargo install --locked stepwise)" 2 ;;
    esac
}
[ -n "$target" ] || target="$(detect_target)"

case "$target" in
    *windows*) archive="stepwise-$target.zip"; exe=stepwise.exe ;;
    *) archive="stepwise-$target.tar.gz"; exe=stepwise ;;
esac
if [ "$version" = latest ]; then
    url="$releases/latest/download"
else
    url="$releases/download/$version"
fi

# Downloads $1 to $2 with curl or wget.
download() {
    if command -v curl >/dev/null 2>&1; then
        curl --proto '=https,http' -fsSL --retry 3 -o "$2" "$1"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$1"
    else
        fail "neither curl nor wget is installed" 2
    fi
}

sha256() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        fail "neither sha256sum nor shasum is installed: cannot check the download" 2
    fi
}

tmp="$(mktemp -d 2>/dev/null || mktemp -d -t stepwise)"
trap 'rm -rf "$tmp"' EXIT INT TERM

say "downloading $archive ($version) from $url"
download "$url/$archive" "$tmp/$archive" || fail "cannot download $url/$archive"
download "$url/$archive.sha256" "$tmp/$archive.sha256" || fail "cannot download $url/$archive.sha256"
expected="$(cut -d' ' -f1 < "$tmp/$archive.sha256")"
actual="$(sha256 "$tmp/$archive")"
if [ -z "$expected" ] || [ "$expected" != "$actual" ]; then
    fail "checksum mismatch for $archive: expected ${expected:-nothing}, got $actual; nothing installed"
fi

mkdir -p "$tmp/x"
case "$archive" in
    *.zip) unzip -q "$tmp/$archive" -d "$tmp/x" || fail "cannot unpack $archive" ;;
    *) tar -xzf "$tmp/$archive" -C "$tmp/x" || fail "cannot unpack $archive" ;;
esac
binary="$tmp/x/stepwise-$target/$exe"
[ -f "$binary" ] || fail "$archive holds no stepwise-$target/$exe"

mkdir -p "$bin_dir" || fail "cannot create $bin_dir"
# Copied beside the old binary, then renamed over it: a running stepwise is never half-written.
cp "$binary" "$bin_dir/.$exe.new" || fail "cannot write into $bin_dir"
chmod 755 "$bin_dir/.$exe.new"
mv -f "$bin_dir/.$exe.new" "$bin_dir/$exe" || fail "cannot install $bin_dir/$exe"

installed="$("$bin_dir/$exe" --version 2>/dev/null || echo "stepwise ($target)")"
say "installed $installed into $bin_dir/$exe"
case ":${PATH:-}:" in
    *":$bin_dir:"*) ;;
    *) say "note: $bin_dir is not on your PATH; add it, e.g. export PATH=\"$bin_dir:\$PATH\"" ;;
esac
