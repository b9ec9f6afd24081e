// swift-tools-version: 6.1
// Benchmarks live in their own package so that the main build and the test
// run stay light. Run: swift run -c release --package-path Benchmarks mls-bench
import PackageDescription

let package = Package(
    name: "ConclaveBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Conclave", path: "..")
    ],
    targets: [
        .executableTarget(
            name: "mls-bench",
            dependencies: [
                .product(name: "MLS", package: "Conclave"),
                .product(name: "MLSCodec", package: "Conclave"),
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)
