// swift-tools-version: 6.1
// The MLS working group's interop test-harness client (mlswg/mls-implementations,
// interop/), as a separate package so that the main build stays free of gRPC.
// Run: swift run -c release --package-path Interop mls-interop-client --port 50051
import PackageDescription

let package = Package(
    name: "ConclaveInterop",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mls-interop-client", targets: ["mls-interop-client"])
    ],
    dependencies: [
        .package(name: "Conclave", path: ".."),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // The MLSClient service: generated protobuf and gRPC code (Generated/,
        // from Protos/mls_client.proto by scripts/generate.sh) and its
        // implementation on the MLS target.
        .target(
            name: "MLSInteropService",
            dependencies: [
                .product(name: "MLS", package: "Conclave"),
                .product(name: "MLSCodec", package: "Conclave"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .executableTarget(
            name: "mls-interop-client",
            dependencies: [
                "MLSInteropService",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "MLSInteropTests",
            dependencies: [
                "MLSInteropService",
                .product(name: "MLS", package: "Conclave"),
                .product(name: "MLSCodec", package: "Conclave"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
