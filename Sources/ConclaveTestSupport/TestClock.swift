import Foundation
import Synchronization

/// A clock that tests move by hand, shared by an in-process server (as its
/// `ServerClock`) and clients (as their clock). It starts at the real time,
/// in whole milliseconds. A stopped clock moves only when told; a ticking
/// one (for a server process, whose clock is the system's plus an offset)
/// runs with the real time, ahead by what it was moved.
public final class TestClock: Sendable {
    private let millis: Mutex<Int64>
    private let ticking: Bool

    public init(ticking: Bool = false) {
        self.ticking = ticking
        millis = Mutex(ticking ? 0 : Int64(Date().timeIntervalSince1970 * 1000))
    }

    public func now() -> Date {
        let millis = millis.withLock { $0 }
        return ticking ? Date().addingTimeInterval(Double(millis) / 1000) : Date(timeIntervalSince1970: Double(millis) / 1000)
    }

    /// Moves the time forward for the server and the clients at once.
    public func advance(by seconds: TimeInterval) {
        millis.withLock { $0 += Int64(seconds * 1000) }
    }
}
