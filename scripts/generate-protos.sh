#!/usr/bin/env bash
# Regenerates the Swift of the worker contracts from proto-docs/*.proto into
# Sources/JSMContracts/Generated/. The generated files are committed: the
# build and CI never run this script, so a build needs neither protoc nor
# the plugin. Run it after editing a .proto, then commit both.
#
# Why this way: Debian's protoc (protobuf-compiler) plus protoc-gen-swift
# built from the swift-protobuf version the package already depends on, so the
# generator always matches the runtime. The SwiftProtobufPlugin build plugin is
# avoided on purpose (it compiles protobuf's C++ and abseil, minutes per build).
#
# Safe to run twice: the output folder's old *.pb.swift are replaced by a fresh
# set, so a removed .proto leaves no stale Swift behind; the plugin build is
# incremental in its own scratch folder (.build-protoc, git-ignored), apart
# from the main .build so it never disturbs another build.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
proto_dir="$root/proto-docs"
out_dir="$root/Sources/JSMContracts/Generated"
scratch="$root/.build-protoc"

cd "$root"

if ! command -v protoc >/dev/null 2>&1; then
    echo "protoc not found: installing Debian's protobuf-compiler" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y protobuf-compiler
fi
echo "using $(protoc --version)"

echo "building protoc-gen-swift (scratch path $scratch)"
swift build -c release --product protoc-gen-swift --scratch-path "$scratch"
plugin="$(swift build -c release --product protoc-gen-swift --scratch-path "$scratch" --show-bin-path)/protoc-gen-swift"
if [ ! -x "$plugin" ]; then
    echo "protoc-gen-swift was not built at $plugin" >&2
    exit 1
fi

shopt -s nullglob
protos=("$proto_dir"/*.proto)
if [ "${#protos[@]}" -eq 0 ]; then
    echo "no .proto files in $proto_dir" >&2
    exit 1
fi

# Generate into a temporary folder first, so a protoc error leaves the
# committed files untouched.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
protoc \
    --plugin="protoc-gen-swift=$plugin" \
    --proto_path="$proto_dir" \
    --swift_out="$tmp" \
    --swift_opt=Visibility=Public \
    "${protos[@]}"

mkdir -p "$out_dir"
rm -f "$out_dir"/*.pb.swift
cp "$tmp"/*.pb.swift "$out_dir"/
echo "generated:"
ls -1 "$out_dir"
