import ConclaveProtocol
import ConclaveStorage
import Foundation
import NIOCore
import NIOWebSocket
import Synchronization

/// One WebSocket's outgoing side (issue 14): what the hub hands over waits
/// here, and a short-lived task writes it out and ends when nothing is left.
/// An idle connection holds no task of its own beyond the WebSocket's, and
/// no stack of a past inbox read: a task keeps the memory of the deepest
/// call it made for as long as it lives.
///
/// At most one pushing task runs per connection, so frames leave in order.
/// The task sends handed-over events in sequence order while they follow
/// the cursor without a gap. A batch of messages is handed over in its
/// order by the batch itself; events after a gap wait: the missing one was
/// usually stored by the other batch that ran at the same time, or alone,
/// and is handed over a moment later; if it has not come after
/// ``gapGrace``, or on a wake-up, or when more than ``buffered`` events
/// wait, the task reads the store from the cursor until it is drained.
final class InboxPusher: Sendable {
    /// Events a connection holds before it drops them and reads the store instead.
    static let buffered = 512
    /// How long events after a gap wait for the missing one before the store is read.
    static let gapGrace = Duration.milliseconds(50)
    /// Frames are sent in buffers of about this size at most: the allocator
    /// gives a larger buffer fresh pages each time, which fault in as they
    /// are written (a fifth of the cost of writing a room's frames).
    static let chunkBytes = 32 << 10

    let device: DeviceID
    private let store: ConclaveStore
    private let pageBytes: Int
    private let clock: ServerClock
    private let target: any PushTarget
    private let stillValid: @Sendable () async -> Bool
    private let state: Mutex<State>

    private struct State {
        var cursor: Int64
        /// Handed over and not sent yet, in any order.
        var events: [PushedEvent] = []
        var drain = false
        var cutOff = false
        var running = false
        var stopped = false
        /// The events waiting follow a gap: nothing to send until another
        /// hand-over, a wake-up or the grace period's end.
        var held = false
    }

    private enum Work {
        case send([PushedEvent], drain: Bool)
        case end
    }

    init(
        device: DeviceID, after cursor: Int64, store: ConclaveStore, pageBytes: Int, clock: ServerClock, target: any PushTarget,
        stillValid: @escaping @Sendable () async -> Bool
    ) {
        self.device = device
        self.store = store
        self.pageBytes = pageBytes
        self.clock = clock
        self.target = target
        self.stillValid = stillValid
        state = Mutex(State(cursor: cursor))
    }

    /// A stored message for this device.
    func hand(_ event: PushedEvent) {
        start { state in
            if state.events.count < Self.buffered {
                state.events.append(event)
                state.held = false
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
                    try await target.end(reason: "session ended")
                }
            } catch {
                // The connection is gone or the store failed: it ends, and the device reconnects and reads from its cursor.
                state.withLock { $0.stopped = true }
                target.abort()
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
            guard state.drain || (!state.events.isEmpty && !state.held) else {
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
        var waiting = try await sendInOrder(events, after: &cursor)
        if drain {
            let encoder = ConclaveJSON.encoder()
            while true {
                let page = try await store.readInbox(device: device, after: cursor, limit: 200, maxBytes: pageBytes, now: clock.now)
                if let last = page.events.last {
                    var frames = Self.chunk()
                    for event in page.events {
                        try Self.append(event, to: &frames, encoder)
                        try await sendIfFull(&frames)
                    }
                    if !frames.isEmpty { try await target.send(frames) }
                    cursor = last.seq
                }
                // What is stored after this read is handed over, or wakes the connection, again.
                if page.drained || page.events.isEmpty { break }
            }
            waiting = try await sendInOrder(waiting, after: &cursor)
        }
        let sent = cursor
        let held = state.withLock { state in
            state.cursor = sent
            // With hand-overs that came meanwhile, look again at once; else wait for the missing event.
            state.held = !waiting.isEmpty && state.events.isEmpty
            state.events += waiting
            if state.events.count > Self.buffered {
                state.events = []
                state.drain = true
                state.held = false
            }
            return state.held
        }
        if held {
            target.schedule(after: Self.gapGrace) { [weak self] in self?.graceEnded(at: sent) }
        }
    }

    /// Appends an event read from the store as a text frame: its JSON the same
    /// bytes as the encoder's, without its cost, for an application message
    /// (InboxPushTests).
    private static func append(_ event: InboxEvent, to frames: inout TextFrames, _ encoder: JSONEncoder) throws {
        if let encoded = EncodedEvent(event) {
            encoded.append(seq: event.seq, to: &frames)
        } else {
            frames.append(json: try encoder.encode(event))
        }
    }

    /// Sends the events that follow the cursor without a gap, in sequence
    /// order; returns those after a gap.
    private func sendInOrder(_ events: [PushedEvent], after cursor: inout Int64) async throws -> [PushedEvent] {
        let ordered = events.filter { $0.seq > cursor }.sorted { $0.seq < $1.seq }
        var frames = Self.chunk(expecting: ordered.reduce(0) { $0 + $1.event.jsonBytes + 10 })
        var next = cursor
        var index = ordered.startIndex
        while index < ordered.endIndex, ordered[index].seq <= next + 1 {
            if ordered[index].seq == next + 1 {  // (a second copy of one just taken is skipped)
                ordered[index].event.append(seq: ordered[index].seq, to: &frames)
                next += 1
                try await sendIfFull(&frames)
            }
            index += 1
        }
        if !frames.isEmpty { try await target.send(frames) }
        cursor = next
        return Array(ordered[index...])
    }

    /// Sends the frames once they hold ``chunkBytes``, and starts a new
    /// buffer. (A failed send ends the connection: the cursor is moved only
    /// once every frame was sent.)
    private func sendIfFull(_ frames: inout TextFrames) async throws {
        guard frames.bytes.readableBytes >= Self.chunkBytes else { return }
        try await target.send(frames)
        frames = Self.chunk()
    }

    /// A buffer for frames, with room for a chunk (and the frame that fills
    /// it), or for `bytes` when that is less.
    private static func chunk(expecting bytes: Int = .max) -> TextFrames {
        TextFrames(capacity: min(bytes, chunkBytes + 1024))
    }

    /// The missing event did not come: read the store, unless the cursor
    /// moved on meanwhile.
    private func graceEnded(at cursor: Int64) {
        let stuck = state.withLock { $0.held && $0.cursor == cursor }
        if stuck { wake() }
    }
}

/// Where a pusher's frames go: a WebSocket, or a test's recorder.
protocol PushTarget: Sendable {
    /// Sends text frames, in order; while the connection cannot take more,
    /// returns only once they are written (a client that does not read
    /// holds its pusher up).
    func send(_ frames: TextFrames) async throws
    /// Sends a close frame (policy violation) with this reason; the
    /// connection is closed a few seconds later whatever the client does.
    func end(reason: String) async throws
    /// Closes the connection at once (it failed).
    func abort()
    /// Runs `body` once `delay` has passed.
    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void)
}
