import ConclaveProtocol
import Foundation
import Synchronization
import Testing

@testable import ConclaveStorage

/// The group commit of messages (SQLite and PostgreSQL), with a store of
/// the test's own that records its batches, holds the first ones (as many
/// as run at once) until the test lets them go, and fails on one message.
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
            let id = message.delivery.messageID ?? ""
            return message.storing { outcome, _ in
                guard case .stored = outcome else { return }
                if self.told.withLock({ $0.isEmpty }) { _ = self.callerResumed.wait(timeout: .now() + 0.5) }
                let snapshot = self.resumed.withLock { $0 }
                self.told.withLock { $0.append((id, snapshot)) }
            }
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

    /// Callers told by a closure (a send on a WebSocket), and stored
    /// handlers, in the order they were told.
    final class Callers: Sendable {
        /// `stored id` for a handler, `done id` or `failed id` for a caller.
        let log = Mutex<[String]>([])
        private let all = Mutex<(expected: Int, told: Int, waiter: CheckedContinuation<Void, Never>?)>((0, 0, nil))

        init(expecting count: Int) { all.withLock { $0.expected = count } }

        func done(_ id: String) -> MessageAppender.Done {
            { result in
                self.log.withLock { $0.append(((try? result.get()) != nil ? "done " : "failed ") + id) }
                let waiter = self.all.withLock { all in
                    all.told += 1
                    return all.told == all.expected ? all.waiter : nil
                }
                waiter?.resume()
            }
        }

        func handled(_ message: MessageAppender.Message) -> MessageAppender.Message {
            let id = message.delivery.messageID ?? ""
            return message.storing { _, _ in self.log.withLock { $0.append("stored " + id) } }
        }

        /// Returns once every expected caller was told.
        func wait() async {
            await withCheckedContinuation { continuation in
                let ready = all.withLock { all in
                    guard all.told < all.expected else { return true }
                    all.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }

    @Test("Callers told by a closure are told once their batch committed, after its handlers, in its order; a failed message alone")
    func callersToldByAClosure() async throws {
        let (appender, recorder) = (MessageAppender(), Recorder())
        let store = Self.store(recorder)
        let ids = ["a", "b", "poison", "c"]
        let callers = Callers(expecting: Self.first.count + ids.count)
        for (index, message) in Self.first.enumerated() {
            appender.append(message, store: store, done: callers.done(message.delivery.messageID ?? ""))
            while recorder.held.withLock({ $0.count }) <= index { await Task.yield() }
        }
        for id in ids { appender.append(callers.handled(Self.message(id)), store: store, done: callers.done(id)) }
        #expect(appender.waiting == ids.count, "queued without waiting")
        #expect(callers.log.withLock { $0.isEmpty }, "nobody is told before a batch committed")
        for continuation in recorder.held.withLock({ $0 }) { continuation.resume() }
        await callers.wait()
        let log = callers.log.withLock { $0 }
        #expect(log.filter { $0.hasPrefix("failed") } == ["failed poison"])
        #expect(log.filter { $0.hasPrefix("done") }.count == Self.first.count + 3, "each caller told once")
        for id in ["a", "b", "c"] {
            let (stored, done) = (log.firstIndex(of: "stored " + id), log.firstIndex(of: "done " + id))
            #expect(stored != nil && done != nil && (stored ?? 0) < (done ?? 0), "\(id): its handler, then its caller")
        }
    }

    @Test("Past waitingLimit waiting messages, a message is stored alone at once, without waiting for a batch")
    func storedAloneWhenTooManyWait() async throws {
        let (appender, recorder) = (MessageAppender(), Recorder())
        let store = Self.store(recorder)
        let callers = Callers(expecting: 1)
        for (index, message) in Self.first.enumerated() {
            appender.append(message, store: store) { _ in }
            while recorder.held.withLock({ $0.count }) <= index { await Task.yield() }
        }
        for index in 0..<MessageAppender.waitingLimit { appender.append(Self.message("w\(index)"), store: store) { _ in } }
        appender.append(Self.message("over"), store: store, done: callers.done("over"))
        await callers.wait()
        #expect(callers.log.withLock { $0 } == ["done over"])
        #expect(appender.waiting == MessageAppender.waitingLimit, "the others still wait for the held batches")
        #expect(recorder.batches.withLock { $0 }.last == ["over"])
        for continuation in recorder.held.withLock({ $0 }) { continuation.resume() }
        while appender.waiting > 0 { await Task.yield() }
    }
}

extension MessageAppender.Message {
    /// This message with a handler told its outcome once stored.
    func storing(_ handler: @escaping ConclaveStore.StoredHandler) -> MessageAppender.Message {
        MessageAppender.Message(conversation: conversation, epoch: epoch, generation: generation, delivery: delivery, stored: handler)
    }
}
