import Foundation
import Synchronization

/// The directories a test process makes for its servers (their data
/// directories and logs), deleted when the process exits: a test that
/// stops a server may still start it again on the same directory, and one
/// that fails or crashes would otherwise leave hundreds of megabytes behind
/// in the temporary directory, run after run. `CONCLAVE_KEEP_TEST_DIRECTORIES=1`
/// keeps them, to read a failed run's logs.
public enum TestDirectories {
    private static let made = Mutex<[String]>([])
    private static let deletedAtExit: Void = { atexit { TestDirectories.deleteAll() } }()

    /// A new, empty directory in the temporary directory, its name starting with `prefix`.
    public static func make(_ prefix: String) throws -> String {
        let path = reserve(prefix)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A path in the temporary directory, its name starting with `prefix`,
    /// for something else to create (a command told where to put its files).
    public static func reserve(_ prefix: String) -> String {
        _ = deletedAtExit
        let path = NSTemporaryDirectory() + prefix + String(UUID().uuidString.prefix(8))
        made.withLock { $0.append(path) }
        return path
    }

    private static func deleteAll() {
        guard ProcessInfo.processInfo.environment["CONCLAVE_KEEP_TEST_DIRECTORIES"] != "1" else { return }
        for path in made.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
    }
}
