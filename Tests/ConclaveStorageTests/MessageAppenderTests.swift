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

    /// Which messages' handlers were told, and which callers had resumed by
    /// then. The first handler told gives a caller that was resumed too
    /// early half a second to show itself (a caller resumed after the
    /// handlers cannot: that wait runs out).
    final class Handlers: Sendable {
        let resumed = Mutex<Set<String>>([])
        let callerResumed = DispatchSemaphore(value: 0)
        let told = Mutex<[(id: String, resumedThen: Set<String>)]>([])

        func handled(_ message: MessageAppender.Message) -> MessageAppender.Message {
            var message = message
            let id = message.delivery.messageID ?? ""
            message.stored = { outcome, _ in
                guard case .stored = outcome else { return }
                if self.told.withLock({ $0.isEmpty }) { _ = self.callerResumed.wait(timeout: .now() + 0.5) }
                let snapshot = self.resumed.withLock { $0 }
                self.told.withLock { $0.append((id, snapshot)) }
            }
            return message
        }
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
    /// the held batches go; which messages were stored. Each caller of
    /// `rest` that resumes with its message stored tells `handlers`.
    @discardableResult
    static func run(
        _ appender: MessageAppender, _ recorder: Recorder, first: [MessageAppender.Message], rest: [MessageAppender.Message],
        handlers: Handlers? = nil
    ) async throws -> [String: Bool] {
        let store = Self.store(recorder)
        return try await withThrowingTaskGroup(of: (String, Bool).self) { group in
            for (index, message) in first.enumerated() {
                group.addTask { (message.delivery.messageID ?? "", (try? await appender.append(message, store: store)) != nil) }
                while recorder.held.withLock({ $0.count }) <= index { await Task.yield() }
            }
            for message in rest {
                group.addTask {
                    let id = message.delivery.messageID ?? ""
                    guard (try? await appender.append(message, store: store)) != nil else { return (id, false) }
                    if let handlers {
                        handlers.resumed.withLock { _ = $0.insert(id) }
                        handlers.callerResumed.signal()
                    }
                    return (id, true)
                }
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

    @Test("A batch stored whole tells its messages' handlers on its task, in its order, before any of its callers resumes")
    func storedHandlersOfAWholeBatch() async throws {
        let (appender, recorder, handlers) = (MessageAppender(), Recorder(), Handlers())
        let rest = (0..<40).map { handlers.handled(Self.message("m\($0)")) }
        try await Self.run(appender, recorder, first: Self.first, rest: rest, handlers: handlers)
        let batch = try #require(recorder.batches.withLock { $0 }.last)
        let told = handlers.told.withLock { $0 }
        #expect(batch.count == rest.count)
        #expect(told.map(\.id) == batch, "told in the batch's order")
        #expect(told.allSatisfy { $0.resumedThen.isEmpty }, "before any caller of the batch resumed")
    }

    @Test("A batch that failed and is stored message by message tells each stored message's handler before its caller resumes")
    func storedHandlersAfterAFailedBatch() async throws {
        let (appender, recorder, handlers) = (MessageAppender(), Recorder(), Handlers())
        let rest = ["a", "b", "poison", "c", "d"].map { handlers.handled(Self.message($0)) }
        try await Self.run(appender, recorder, first: Self.first, rest: rest, handlers: handlers)
        let told = handlers.told.withLock { $0 }
        #expect(recorder.batches.withLock { $0 }.contains { $0.count == 5 }, "the five went in one batch first")
        #expect(handlers.resumed.withLock { $0 } == ["a", "b", "c", "d"])
        #expect(Set(told.map(\.id)) == ["a", "b", "c", "d"] && told.count == 4)
        #expect(told.allSatisfy { !$0.resumedThen.contains($0.id) })
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
