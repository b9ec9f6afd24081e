import Foundation
import Synchronization

/// A clock that tests move by hand, shared by an in-process server (as its
/// `ServerClock`) and clients (as their clock). It starts at the real time,
/// in whole milliseconds.
public final class TestClock: Sendable {
    private let millis: Mutex<Int64>

    public init() { millis = Mutex(Int64(Date().timeIntervalSince1970 * 1000)) }

    public func now() -> Date { Date(timeIntervalSince1970: Double(millis.withLock { $0 }) / 1000) }

    /// Moves the time forward for the server and the clients at once.
    public func advance(by seconds: TimeInterval) {
        millis.withLock { $0 += Int64(seconds * 1000) }
    }
}
