// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Conclave",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "MLSCodec", targets: ["MLSCodec"]),
        .library(name: "MLS", targets: ["MLS"]),
        .library(name: "MLSVectors", targets: ["MLSVectors"]),
        .executable(name: "conclave", targets: ["conclave"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.20.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.6.0"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.12.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.29.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.30.0"),
    ],
    targets: [
        // RFC 9420 §2.1 TLS presentation language: no dependencies at all.
        .target(name: "MLSCodec"),
        // RFC 9420 protocol: pure and synchronous, swift-crypto only.
        .target(
            name: "MLS",
            dependencies: [
                "MLSCodec",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Runs the official MLS working-group test vectors (JSON files) against the MLS target.
        .target(name: "MLSVectors", dependencies: ["MLS", "MLSCodec"]),
        // Wire types shared by server, SDK and CLI: DTOs, identifiers, device certificates.
        .target(
            name: "ConclaveProtocol",
            dependencies: ["MLS", "MLSCodec", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // SQL storage behind one interface, with SQLite and PostgreSQL drivers.
        .target(
            name: "ConclaveStorage",
            dependencies: [
                "ConclaveProtocol",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The network's server: Authentication and Delivery Services, inbox, admin API.
        .target(
            name: "ConclaveServer",
            dependencies: [
                "ConclaveProtocol", "ConclaveStorage", "MLS", "MLSCodec",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Resources/openapi.json")]
        ),
        // The SDK: a device's MLS state, its encrypted local store, its connection.
        .target(
            name: "ConclaveClient",
            dependencies: [
                "ConclaveProtocol", "MLS", "MLSCodec",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "conclave",
            dependencies: [
                "MLSVectors", "ConclaveProtocol", "ConclaveServer", "ConclaveClient", "ConclaveStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(name: "MLSCodecTests", dependencies: ["MLSCodec"]),
        .testTarget(name: "MLSTests", dependencies: ["MLS", "MLSCodec", "MLSVectors"]),
        // Test-only helpers: a throwaway PostgreSQL server, server processes started and stopped by PID.
        .target(name: "ConclaveTestSupport", dependencies: ["ConclaveStorage", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "ConclaveStorageTests", dependencies: ["ConclaveStorage", "ConclaveProtocol", "ConclaveTestSupport"]),
        .testTarget(
            name: "ConclaveIntegrationTests",
            dependencies: [
                "ConclaveServer", "ConclaveClient", "ConclaveProtocol", "ConclaveStorage", "ConclaveTestSupport", "MLS",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
