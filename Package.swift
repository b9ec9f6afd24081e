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
        .executableTarget(
            name: "conclave",
            dependencies: [
                "MLSVectors",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "MLSCodecTests", dependencies: ["MLSCodec"]),
        .testTarget(name: "MLSTests", dependencies: ["MLS", "MLSCodec", "MLSVectors"]),
    ],
    swiftLanguageModes: [.v6]
)
