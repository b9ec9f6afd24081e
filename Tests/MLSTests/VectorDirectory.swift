import Foundation

/// Where the official vectors live: `$CONCLAVE_VECTORS_DIR`, or
/// `../shared/vectors/mls` beside the repository.
enum VectorDirectory {
    static var url: URL {
        if let override = ProcessInfo.processInfo.environment["CONCLAVE_VECTORS_DIR"] {
            return URL(fileURLWithPath: override, isDirectory: true)
        }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // MLSTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // repository
            .deletingLastPathComponent()
            .appendingPathComponent("shared/vectors/mls", isDirectory: true)
    }
}
