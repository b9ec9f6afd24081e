import Foundation
import Synchronization

/// A clock that tests move by hand, shared by a server process (which
/// reads it from ``file`` through `--testing-clock`) and in-process
/// clients (which call ``now()``). It starts at the real time.
public final class TestClock: Sendable {
    public let file: String
    private let millis: Mutex<Int64>

    public init(directory: String) throws {
        file = directory + "/testing-clock"
        let start = Int64(Date().timeIntervalSince1970 * 1000)
        millis = Mutex(start)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Self.write(start, to: file)
    }

    public func now() -> Date { Date(timeIntervalSince1970: Double(millis.withLock { $0 }) / 1000) }

    /// Moves the time forward for the server and the clients at once.
    public func advance(by seconds: TimeInterval) throws {
        let next = millis.withLock { value -> Int64 in
            value += Int64(seconds * 1000)
            return value
        }
        try Self.write(next, to: file)
    }

    private static func write(_ value: Int64, to path: String) throws {
        // Written beside and renamed, so the server never reads half a number.
        let temporary = path + ".tmp"
        try Data("\(value)\n".utf8).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, path) == 0 else { throw ConclaveServerProcessError("cannot write the testing clock \(path)") }
    }
}
