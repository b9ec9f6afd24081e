// swift-tools-version: 6.1
// Benchmarks live in their own package so that the main build, the test run
// and the shipped `conclave` binary stay free of them. See docs/benchmarks.md:
//   swift build -c release --package-path Benchmarks
//   Benchmarks/.build/release/mls-bench            (MLS framing, groups at scale)
//   Benchmarks/.build/release/conclave-bench       (a real server over loopback)
import PackageDescription

let package = Package(
    name: "ConclaveBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Conclave", path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.3.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.30.0"),
    ],
    targets: [
        .executableTarget(
            name: "mls-bench",
            dependencies: [
                .product(name: "MLS", package: "Conclave"),
                .product(name: "MLSCodec", package: "Conclave"),
            ]
        ),
        // The key-transparency log's costs (issue 18).
        .executableTarget(
            name: "transparency-bench",
            dependencies: [
                .product(name: "ConclaveProtocol", package: "Conclave"),
                .product(name: "ConclaveStorage", package: "Conclave"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The server load generator: drives a `conclave server run` process (a release build of the main package).
        .executableTarget(
            name: "conclave-bench",
            dependencies: [
                .product(name: "ConclaveBenchmarkSupport", package: "Conclave"),
                .product(name: "ConclaveClient", package: "Conclave"),
                .product(name: "ConclaveProtocol", package: "Conclave"),
                .product(name: "ConclaveServer", package: "Conclave"),
                .product(name: "ConclaveSupport", package: "Conclave"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
