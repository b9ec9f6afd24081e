import Foundation
import Synchronization

/// A clock that runs ahead of the system clock by an offset the tests move
/// (`POST /v1/admin/test-clock`), kept in a file of the data directory so
/// that it survives a restart. Only debug builds of `conclave server run`
/// enable it, and only when `CONCLAVE_TEST_CLOCK=1`: release builds have
/// no way to move the server's time.
public final class ClockOffset: Sendable {
    private let file: String
    private let seconds: Mutex<Double>

    /// Reads the offset from `file` (0 when it does not exist).
    public init(file: String) throws {
        self.file = file
        var initial = 0.0
        if let data = FileManager.default.contents(atPath: file) {
            guard let value = Double(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw DataDirectory.Failure.invalid("\(file) does not hold a number of seconds")
            }
            initial = value
        }
        seconds = Mutex(initial)
    }

    /// The server's clock: the system's, ahead by the offset.
    public var clock: ServerClock { ServerClock { Date().addingTimeInterval(self.seconds.withLock { $0 }) } }

    /// Moves the clock forward by `delta` seconds (written before it is used).
    func advance(by delta: Double) throws -> Double {
        try seconds.withLock { value in
            let next = value + delta
            guard FileManager.default.createFile(atPath: file, contents: Data("\(next)\n".utf8)) else {
                throw DataDirectory.Failure.unreadable(file)
            }
            value = next
            return next
        }
    }
}
