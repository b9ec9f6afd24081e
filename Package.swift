// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Conclave",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "MLSCodec", targets: ["MLSCodec"]),
        .library(name: "MLS", targets: ["MLS"]),
        .library(name: "MLSVectors", targets: ["MLSVectors"]),
        .library(name: "ConclaveProtocol", targets: ["ConclaveProtocol"]),
        .library(name: "ConclaveSupport", targets: ["ConclaveSupport"]),
        .library(name: "ConclaveClient", targets: ["ConclaveClient"]),
        .library(name: "ConclaveServer", targets: ["ConclaveServer"]),
        .library(name: "ConclaveStorage", targets: ["ConclaveStorage"]),
        // The load generator's hooks into the client (Benchmarks/); `conclave` does not link them.
        .library(name: "ConclaveBenchmarkSupport", targets: ["ConclaveBenchmarkSupport"]),
        .executable(name: "conclave", targets: ["conclave"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.24.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.3.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.20.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.6.0"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.12.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.29.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.30.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        // Layered settings (flags, environment, file); no file-format traits: the file is conclave.json, decoded by the server.
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0", traits: []),
        // OpenID Connect: JWKS and ID-token signatures (RS256, ES256) are checked by jwt-kit, not by our own code.
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.0"),
    ],
    targets: [
        // RFC 9420 §2.1 TLS presentation language: no dependencies at all.
        .target(name: "MLSCodec"),
        // RFC 9420 protocol: pure and synchronous, swift-crypto only.
        .target(name: "MLS", dependencies: ["MLSCodec", .product(name: "Crypto", package: "swift-crypto")]),
        // Runs the official MLS working-group test vectors (JSON files) against the MLS target.
        .target(name: "MLSVectors", dependencies: ["MLS", "MLSCodec"]),
        // Small utilities with one home: an async lock, a free loopback port, early writeback of file transfers.
        .target(name: "ConclaveSupport", dependencies: ["CConclaveSystem"]),
        // Wire types shared by server, SDK and CLI: DTOs, identifiers, error codes, device certificates.
        .target(
            name: "ConclaveProtocol",
            dependencies: ["MLS", "MLSCodec", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // System calls the Swift Glibc module leaves out (sync_file_range), for file transfers.
        .systemLibrary(name: "CConclaveSystem"),
        // The system's SQLite 3 (Debian: libsqlite3-dev) for the server's own driver.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // SQL storage behind one interface, with SQLite and PostgreSQL drivers.
        .target(
            name: "ConclaveStorage",
            dependencies: [
                "ConclaveProtocol", "ConclaveSupport", "CSQLite",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The network's server: its services (authentication, delivery, inbox, policy, federation, admin) and routes.
        .target(
            name: "ConclaveServer",
            dependencies: [
                "ConclaveProtocol", "ConclaveStorage", "ConclaveSupport", "MLS", "MLSCodec",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            // The OpenAPI document is embedded (Application/OpenAPIText.swift, by scripts/embed-openapi.py): no resource bundle.
            exclude: ["Resources/openapi.json"]
        ),
        // The SDK: a device's MLS state, its encrypted local store, its connection.
        .target(
            name: "ConclaveClient",
            dependencies: [
                "ConclaveProtocol", "ConclaveSupport", "MLS", "MLSCodec",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Hooks of the load generator (Benchmarks/) into the SDK, through its `package` declarations.
        .target(name: "ConclaveBenchmarkSupport", dependencies: ["ConclaveClient", "ConclaveProtocol", "MLS"]),
        .executableTarget(
            name: "conclave",
            dependencies: [
                "MLS", "MLSVectors", "ConclaveProtocol", "ConclaveServer", "ConclaveClient", "ConclaveStorage", "ConclaveSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Test-only helpers: a throwaway PostgreSQL server, networks in process (HummingbirdTesting) and as
        // server processes, a hand-moved clock, raw HTTP and hand-built MLS for modified-client tests.
        .target(
            name: "ConclaveTestSupport",
            dependencies: [
                "ConclaveClient", "ConclaveProtocol", "ConclaveServer", "ConclaveStorage", "ConclaveSupport", "MLS", "MLSCodec",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(name: "MLSCodecTests", dependencies: ["MLSCodec"]),
        .testTarget(
            name: "MLSTests", dependencies: ["MLS", "MLSCodec", "MLSVectors", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "ConclaveSupportTests", dependencies: ["ConclaveSupport"]),
        .testTarget(
            name: "ConclaveProtocolTests",
            dependencies: ["ConclaveProtocol", "MLS", "MLSCodec", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(
            name: "ConclaveStorageTests",
            dependencies: ["ConclaveStorage", "ConclaveProtocol", "ConclaveTestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "ConclaveClientTests",
            dependencies: [
                "ConclaveClient", "ConclaveProtocol", .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The server in process (HummingbirdTesting), driven by SDK clients and hand-built requests; its sans-I/O core.
        .testTarget(
            name: "ConclaveServerTests",
            dependencies: [
                "ConclaveServer", "ConclaveClient", "ConclaveProtocol", "ConclaveStorage", "ConclaveTestSupport", "MLS", "MLSCodec",
                "ConclaveBenchmarkSupport", .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // End to end: real `conclave` processes (the CLI, SIGKILL under traffic, networks in separate processes).
        .testTarget(
            name: "ConclaveIntegrationTests",
            dependencies: [
                "ConclaveClient", "ConclaveProtocol", "ConclaveServer", "ConclaveSupport", "ConclaveTestSupport", "MLS",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
