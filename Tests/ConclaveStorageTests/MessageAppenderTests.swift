import ConclaveProtocol
import Foundation
import Synchronization
import Testing

@testable import ConclaveStorage

/// The group commit of messages on PostgreSQL, with a store of the test's
/// own that records its batches, holds the first ones (as many as run at
/// once) until the test lets them go, and fails on one message.
@Suite struct MessageAppenderTests {
    final class Recorder: Sendable {
        let batches = Mutex<[[String]]>([])
        let held = Mutex<[CheckedContinuation<Void, Never>]>([])
    }

    static func message(_ id: String, bytes: Int = 1) -> MessageAppender.Message {
        MessageAppender.Message(
            conversation: .random(), epoch: 0, generation: 0,
            delivery: Delivery(
                kind: .application, data: [UInt8](repeating: 1, count: bytes), messageID: id, senderDevice: nil, sentAt: Date(),
                recipients: []))
    }

    static func store(_ recorder: Recorder) -> MessageAppender.Store {
        { messages in
            let ids = messages.map { $0.delivery.messageID ?? "" }
            let hold = recorder.batches.withLock { batches in
                batches.append(ids)
                return batches.count <= MessageAppender.concurrentBatches
            }
            if hold { await withCheckedContinuation { continuation in recorder.held.withLock { $0.append(continuation) } } }
            if ids.contains("poison") { throw StoreError.database("refused") }
            return ids.map { _ in (.stored(sentAt: Date(timeIntervalSince1970: 0), expiresAt: nil), [:]) }
        }
    }

    /// Appends `first` one by one until each is held, then `rest`, then lets
    /// the held batches go; which messages were stored.
    static func run(
        _ appender: MessageAppender, _ recorder: Recorder, first: [MessageAppender.Message], rest: [MessageAppender.Message]
    ) async throws -> [String: Bool] {
        let store = Self.store(recorder)
        return try await withThrowingTaskGroup(of: (String, Bool).self) { group in
            for (index, message) in first.enumerated() {
                group.addTask { (message.delivery.messageID ?? "", (try? await appender.append(message, store: store)) != nil) }
                while recorder.held.withLock({ $0.count }) <= index { await Task.yield() }
            }
            for message in rest {
                group.addTask { (message.delivery.messageID ?? "", (try? await appender.append(message, store: store)) != nil) }
            }
            while appender.waiting < rest.count { await Task.yield() }
            for continuation in recorder.held.withLock({ $0 }) { continuation.resume() }
            return try await group.reduce(into: [String: Bool]()) { $0[$1.0] = $1.1 }
        }
    }

    /// One message per batch that runs at once, each held by the store.
    static let first = (0..<MessageAppender.concurrentBatches).map { Self.message("first-\($0)") }

    @Test("Messages that arrive while batches are stored go in the next; a failing batch is stored again message by message")
    func batchesAndFallBack() async throws {
        let (appender, recorder) = (MessageAppender(), Recorder())
        let outcomes = try await Self.run(appender, recorder, first: Self.first, rest: ["a", "poison", "b", "c"].map { Self.message($0) })
        let held = Self.first.count
        #expect(outcomes.filter { !$0.key.hasPrefix("first") } == ["a": true, "poison": false, "b": true, "c": true])
        #expect(outcomes.count == held + 4 && outcomes.filter { $0.key.hasPrefix("first") }.values.allSatisfy { $0 })
        let batches = recorder.batches.withLock { $0 }
        #expect(batches.count == held + 5)
        #expect(batches.prefix(held).allSatisfy { $0.count == 1 && $0[0].hasPrefix("first") })
        #expect(Set(batches[held]) == ["a", "poison", "b", "c"])
        #expect(batches[(held + 1)...].map(\.count) == [1, 1, 1, 1])
    }

    @Test("A batch holds at most batchBytes of payloads, and at least one message")
    func batchBytes() async throws {
        let (appender, recorder) = (MessageAppender(), Recorder())
        let third = MessageAppender.batchBytes / 3
        let outcomes = try await Self.run(
            appender, recorder, first: Self.first,
            rest: [
                Self.message("a", bytes: third), Self.message("b", bytes: third), Self.message("c", bytes: third),
                Self.message("d", bytes: third), Self.message("huge", bytes: MessageAppender.batchBytes + 1),
            ])
        #expect(outcomes.values.allSatisfy { $0 } && outcomes.count == Self.first.count + 5)
        // The messages queue in any order (each is appended by a task of its own): the limits hold whatever it is.
        let batches = recorder.batches.withLock { $0 }.dropFirst(Self.first.count)
        let sizes = ["a": third, "b": third, "c": third, "d": third, "huge": MessageAppender.batchBytes + 1]
        #expect(batches.flatMap { $0 }.sorted() == ["a", "b", "c", "d", "huge"])
        #expect(batches.allSatisfy { $0.count == 1 || $0.reduce(0) { $0 + (sizes[$1] ?? 0) } <= MessageAppender.batchBytes })
        #expect(batches.contains(["huge"]))
    }
}
