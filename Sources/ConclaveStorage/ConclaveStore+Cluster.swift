import ConclaveProtocol
import Foundation
import Synchronization

/// What a server process tells the others that share its PostgreSQL
/// database, with `pg_notify` inside the transaction that made the change
/// (so it arrives if and only if the change committed).
public enum ClusterSignal: Sendable, Hashable {
    /// A write ended that may change what caches hold.
    case invalidate
    /// These devices' inboxes grew: wake their connections.
    case inbox([DeviceID])
    /// These devices were cut off: end their connections.
    case disconnect([DeviceID])
    /// The listener (re)connected and may have missed signals: drop the
    /// caches and wake every connection.
    case resync

    /// The one-letter tag of the signal in a notification.
    var tag: String {
        switch self {
        case .invalidate: "c"
        case .inbox: "i"
        case .disconnect: "d"
        case .resync: "r"
        }
    }
}

extension ConclaveStore {
    /// The `LISTEN`/`NOTIFY` channel of the server processes.
    static let clusterChannel = "conclave"
    /// A notification's payload stays under PostgreSQL's 8,000 bytes.
    static let noticeBytes = 7_000

    /// This process's tag in notifications, on a shared database only.
    var clusterOrigin: String? { database.isShared ? origin : nil }

    /// The payloads of a signal: `TAG ORIGIN [DEVICE…]`, split so that each
    /// stays under ``noticeBytes``.
    static func notices(_ signal: ClusterSignal, from origin: String) -> [String] {
        let head = "\(signal.tag) \(origin)"
        let devices: [DeviceID]
        switch signal {
        case .invalidate, .resync: return [head]
        case .inbox(let list), .disconnect(let list): devices = list
        }
        var notices: [String] = []
        var current = head
        for device in devices {
            if current.utf8.count + device.value.utf8.count + 1 > noticeBytes, current != head {
                notices.append(current)
                current = head
            }
            current += " " + device.value
        }
        if current != head { notices.append(current) }
        return notices
    }

    /// Reads a notification; nil for one of this process or one that does
    /// not parse.
    static func signal(from payload: String, ignoring origin: String) -> ClusterSignal? {
        let parts = payload.split(separator: " ").map(String.init)
        guard parts.count >= 2, parts[1] != origin else { return nil }
        let devices = parts.dropFirst(2).compactMap(DeviceID.init)
        switch parts[0] {
        case "c": return .invalidate
        case "i": return .inbox(devices)
        case "d": return .disconnect(devices)
        default: return nil
        }
    }

    /// Sends a signal on `connection`, inside its transaction.
    static func announce(_ signal: ClusterSignal, from origin: String, on connection: any SQLConnection) async throws {
        for notice in notices(signal, from: origin) {
            try await connection.execute("SELECT pg_notify('\(clusterChannel)', ?)", [.text(notice)])
        }
    }

    /// Whether ``announceInbox(_:)`` has other processes to tell.
    public var announcesInbox: Bool { clusterOrigin != nil }

    /// Tells the other server processes that these devices' inboxes grew
    /// (nothing on a database one process owns), and returns once they have
    /// been told. Used for application messages, after their transaction
    /// committed: a `pg_notify` inside it would hold PostgreSQL's lock on the
    /// notification queue through the commit's WAL flush, so that every
    /// message transaction of the cluster would commit one after the other.
    /// Here the wake-ups of all messages stored meanwhile share one
    /// notification transaction. A process that stops between the commit
    /// and this call has not answered the sender, who sends again: the
    /// duplicate is announced then (D17).
    public func announceInbox(_ devices: some Sequence<DeviceID>) async throws {
        guard let origin = clusterOrigin else { return }
        let database = database
        try await inboxAnnouncer.announce(Set(devices)) { devices in
            try await database.transaction { connection in
                try await Self.announce(.inbox(devices.sorted { $0.value < $1.value }), from: origin, on: connection)
            }
        }
    }

    /// The work that one server process at a time does on a shared
    /// database, with its advisory lock key.
    public enum ExclusiveWork: Int64, Sendable {
        /// Sending the federation outbox: two senders would send each request twice.
        case federationRelay = 0x636F_6E63_0001
    }

    /// Runs `body` while this process is the one doing `work` (at once on
    /// a database one process owns).
    public func exclusively(_ work: ExclusiveWork, _ body: @Sendable () async throws -> Void) async throws {
        try await database.exclusively(lock: work.rawValue, body)
    }

    /// Tells the other server processes to end these devices' connections
    /// (nothing on a database one process owns).
    public func announceDisconnect(_ devices: [DeviceID]) async throws {
        guard let origin = clusterOrigin, !devices.isEmpty else { return }
        try await database.transaction { connection in try await Self.announce(.disconnect(devices), from: origin, on: connection) }
    }

    /// Follows the other server processes until cancelled: their writes drop
    /// this process's caches here, and `handle` gets every signal (with
    /// ``ClusterSignal/resync`` whenever the listener (re)connects). Returns
    /// at once on a database one process owns.
    public func followCluster(_ handle: @escaping @Sendable (ClusterSignal) async -> Void) async throws {
        guard database.isShared else { return }
        let (caches, origin) = (caches, origin)
        try await database.follow(
            channel: Self.clusterChannel,
            connected: {
                caches.invalidate()
                await handle(.resync)
            },
            notified: { payload in
                guard let signal = Self.signal(from: payload, ignoring: origin) else { return }
                if signal == .invalidate { caches.invalidate() }
                await handle(signal)
            })
    }
}

/// Wake-ups waiting to be sent to the other server processes: one sender at
/// a time sends all that gathered while the previous notification committed.
final class InboxAnnouncer: Sendable {
    private struct State {
        var devices = Set<DeviceID>()
        var waiters: [CheckedContinuation<Void, any Error>] = []
        var sending = false
    }
    private let state = Mutex(State())

    /// Callers waiting for their wake-ups to go out (tests).
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Adds `devices` to the next notification and waits until it was sent.
    func announce(_ devices: Set<DeviceID>, send: @escaping @Sendable (Set<DeviceID>) async throws -> Void) async throws {
        guard !devices.isEmpty else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let start = state.withLock { state in
                state.devices.formUnion(devices)
                state.waiters.append(continuation)
                guard !state.sending else { return false }
                state.sending = true
                return true
            }
            if start { Task { await self.sendAll(send) } }
        }
    }

    private func sendAll(_ send: @Sendable (Set<DeviceID>) async throws -> Void) async {
        while true {
            let batch = state.withLock { state -> (Set<DeviceID>, [CheckedContinuation<Void, any Error>])? in
                guard !state.waiters.isEmpty else {
                    state.sending = false
                    return nil
                }
                defer {
                    state.devices = []
                    state.waiters = []
                }
                return (state.devices, state.waiters)
            }
            guard let (devices, waiters) = batch else { return }
            do {
                try await send(devices)
                for waiter in waiters { waiter.resume() }
            } catch {
                for waiter in waiters { waiter.resume(throwing: error) }
            }
        }
    }
}
