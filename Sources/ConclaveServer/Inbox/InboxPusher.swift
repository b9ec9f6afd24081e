import ConclaveProtocol
import ConclaveStorage
import HummingbirdWebSocket
import NIOCore
import Synchronization

/// One WebSocket's outgoing side (issue 14): what the hub hands over waits
/// here, and a short-lived task writes it out and ends when nothing is left.
/// An idle connection holds no task of its own beyond the WebSocket's, and
/// no stack of a past inbox read: a task keeps the memory of the deepest
/// call it made for as long as it lives.
///
/// At most one pushing task runs per connection, so frames leave in order.
/// The task sends handed-over events as they are while they follow the
/// cursor without a gap; otherwise (a wake-up, a gap, more than
/// ``buffered`` events waiting) it reads the store from the cursor until it
/// is drained.
final class InboxPusher: Sendable {
    /// Events a connection holds before it drops them and reads the store instead.
    static let buffered = 64

    let device: DeviceID
    private let store: ConclaveStore
    private let pageBytes: Int
    private let clock: ServerClock
    private let outbound: WebSocketOutboundWriter
    private let channel: any Channel
    private let stillValid: @Sendable () async -> Bool
    private let state: Mutex<State>

    private struct State {
        var cursor: Int64
        var events: [PushedEvent] = []
        var drain = false
        var cutOff = false
        var running = false
        var stopped = false
    }

    private enum Work {
        case send([PushedEvent], drain: Bool)
        case end
    }

    init(
        device: DeviceID, after cursor: Int64, store: ConclaveStore, pageBytes: Int, clock: ServerClock, outbound: WebSocketOutboundWriter,
        channel: any Channel, stillValid: @escaping @Sendable () async -> Bool
    ) {
        self.device = device
        self.store = store
        self.pageBytes = pageBytes
        self.clock = clock
        self.outbound = outbound
        self.channel = channel
        self.stillValid = stillValid
        state = Mutex(State(cursor: cursor))
    }

    /// A stored message for this device.
    func hand(_ event: PushedEvent) {
        start { state in
            if state.events.count < Self.buffered {
                state.events.append(event)
            } else {
                state.events = []
                state.drain = true
            }
        }
    }

    /// The device's inbox may have grown: read it from the cursor.
    func wake() { start { $0.drain = true } }

    /// The device was cut off (suspended, deleted, reset, signed out): close
    /// the connection.
    func cutOff() { start { $0.cutOff = true } }

    /// The connection ended: push nothing more.
    func stop() { state.withLock { $0.stopped = true } }

    private func start(_ change: (inout State) -> Void) {
        let begin = state.withLock { state in
            guard !state.stopped else { return false }
            change(&state)
            guard !state.running else { return false }
            state.running = true
            return true
        }
        if begin { Task { await self.run() } }
    }

    private func run() async {
        while let work = next() {
            do {
                switch work {
                case .send(let events, let drain):
                    guard await stillValid() else {
                        state.withLock { $0.cutOff = true }
                        continue
                    }
                    try await send(events, drain: drain)
                case .end:
                    try await outbound.close(.policyViolation, reason: "session ended")
                    closeSoon()
                }
            } catch {
                // The connection is gone or the store failed: it ends, and the device reconnects and reads from its cursor.
                state.withLock { $0.stopped = true }
                channel.close(promise: nil)
            }
        }
    }

    /// What to do next, or nil (the task ends) when nothing is left.
    private func next() -> Work? {
        state.withLock { state in
            if state.stopped {
                state.running = false
                return nil
            }
            if state.cutOff {
                state.stopped = true
                return .end
            }
            guard !state.events.isEmpty || state.drain else {
                state.running = false
                return nil
            }
            defer {
                state.events = []
                state.drain = false
            }
            return .send(state.events, drain: state.drain)
        }
    }

    private func send(_ events: [PushedEvent], drain: Bool) async throws {
        var cursor = state.withLock { $0.cursor }
        var drain = drain
        for event in events where event.seq > cursor {
            guard event.seq == cursor + 1 else {
                drain = true
                break
            }
            try await outbound.write(.text(event.event.text(seq: event.seq)))
            cursor = event.seq
        }
        if drain {
            let encoder = ConclaveJSON.encoder()
            while true {
                let page = try await store.inbox(device: device, after: cursor, limit: 200, maxBytes: pageBytes, now: clock.now)
                guard !page.isEmpty else { break }
                for event in page {
                    try await outbound.write(.text(String(decoding: try encoder.encode(event), as: UTF8.self)))
                    cursor = event.seq
                }
            }
        }
        state.withLock { $0.cursor = cursor }
    }

    /// After the close frame, the client has a few seconds to answer before
    /// the connection is closed anyway: a client that never answers does not
    /// keep it.
    private func closeSoon() {
        let channel = channel
        channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
    }
}
