import ConclaveProtocol
import Foundation
import Synchronization
import Testing

@testable import ConclaveStorage

/// The group commit of messages on PostgreSQL, with a store of the test's
/// own that records its batches and fails on one message.
@Suite struct MessageAppenderTests {
    final class Recorder: Sendable {
        let batches = Mutex<[[String]]>([])
        let firstHeld = Mutex<CheckedContinuation<Void, Never>?>(nil)
    }

    static func message(_ id: String) -> MessageAppender.Message {
        MessageAppender.Message(
            conversation: .random(), epoch: 0, generation: 0,
            delivery: Delivery(kind: .application, data: [1], messageID: id, senderDevice: nil, sentAt: Date(), recipients: []))
    }

    @Test("Messages that arrive while a batch is stored go in the next; a failing batch is stored again message by message")
    func batchesAndFallBack() async throws {
        let appender = MessageAppender()
        let recorder = Recorder()
        let store: MessageAppender.Store = { messages in
            let ids = messages.map { $0.delivery.messageID ?? "" }
            let first = recorder.batches.withLock { batches in
                batches.append(ids)
                return batches.count == 1
            }
            // The first batch waits until the test lets it go, so that the others queue behind it.
            if first { await withCheckedContinuation { continuation in recorder.firstHeld.withLock { $0 = continuation } } }
            if ids.contains("poison") { throw StoreError.database("refused") }
            return ids.map { _ in (.stored(sentAt: Date(timeIntervalSince1970: 0), expiresAt: nil), [:]) }
        }
        let outcomes = try await withThrowingTaskGroup(of: (String, Bool).self) { group in
            group.addTask { ("first", (try? await appender.append(Self.message("first"), store: store)) != nil) }
            while recorder.firstHeld.withLock({ $0 == nil }) { await Task.yield() }
            for id in ["a", "poison", "b", "c"] {
                group.addTask { (id, (try? await appender.append(Self.message(id), store: store)) != nil) }
            }
            while appender.waiting < 4 { await Task.yield() }
            recorder.firstHeld.withLock { $0 }?.resume()
            return try await group.reduce(into: [String: Bool]()) { $0[$1.0] = $1.1 }
        }
        #expect(outcomes == ["first": true, "a": true, "poison": false, "b": true, "c": true])
        let batches = recorder.batches.withLock { $0 }
        #expect(batches.count == 6)
        #expect(batches.first == ["first"])
        #expect(Set(batches[1]) == ["a", "poison", "b", "c"])
        #expect(batches[2...].map(\.count) == [1, 1, 1, 1])
    }
}
