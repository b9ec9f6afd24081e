#!/usr/bin/env bash
# Regenerates Sources/MLSInteropService/Generated/ from Protos/mls_client.proto.
# The generated files are committed: building and testing never need protoc.
#
# Needs protoc (Debian: apt-get install protobuf-compiler) and the two plugins
# built from the pinned packages, outside this repository, e.g.:
#   git clone --branch 2.4.1 https://github.com/grpc/grpc-swift-protobuf /tmp/plugins/grpc-swift-protobuf
#   cd /tmp/plugins/grpc-swift-protobuf
#   swift build -c release --product protoc-gen-grpc-swift-2
#   swift build -c release --product protoc-gen-swift
# then: PLUGINS=/tmp/plugins/grpc-swift-protobuf/.build/release Interop/scripts/generate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
plugins=${PLUGINS:?set PLUGINS to the directory holding protoc-gen-swift and protoc-gen-grpc-swift-2}
out=Sources/MLSInteropService/Generated
mkdir -p "$out"
protoc \
    --plugin=protoc-gen-swift="$plugins/protoc-gen-swift" \
    --plugin=protoc-gen-grpc-swift-2="$plugins/protoc-gen-grpc-swift-2" \
    -I Protos \
    --swift_out="$out" --swift_opt=Visibility=Public \
    --grpc-swift-2_out="$out" --grpc-swift-2_opt=Visibility=Public \
    Protos/mls_client.proto
echo "generated into $out"
