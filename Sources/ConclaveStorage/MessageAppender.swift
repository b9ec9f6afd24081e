import ConclaveProtocol
import Synchronization

/// Group commit for application messages on PostgreSQL (issue 14): the
/// messages that arrive while a batch is being stored wait, then go
/// together in the next one: one statement, one transaction and one WAL
/// flush for all of them, where each would otherwise pay its own. One
/// batch runs at a time per server process; a batch that fails is stored
/// again message by message, so that each message still succeeds or fails
/// alone. No caller returns before its batch has committed.
final class MessageAppender: Sendable {
    struct Message: Sendable {
        let conversation: ConversationID
        let epoch: UInt64
        let generation: UInt64
        let delivery: Delivery
    }

    typealias Outcome = (outcome: SendOutcome, sequences: [DeviceID: Int64])
    typealias Store = @Sendable ([Message]) async throws -> [Outcome]

    /// Messages in one batch at most.
    static let batchLimit = 256

    private struct Waiting {
        let message: Message
        let continuation: CheckedContinuation<Outcome, any Error>
    }

    private struct State {
        var waiting: [Waiting] = []
        var storing = false
    }

    private let state = Mutex(State())

    /// Messages waiting for the next batch (tests).
    var waiting: Int { state.withLock { $0.waiting.count } }

    /// Stores `message` with the next batch (`store` stores a batch, its
    /// outcomes in order) and returns its outcome once that has committed.
    func append(_ message: Message, store: @escaping Store) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { state in
                state.waiting.append(Waiting(message: message, continuation: continuation))
                defer { state.storing = true }
                return !state.storing
            }
            if start { Task { await self.storeAll(store) } }
        }
    }

    private func storeAll(_ store: Store) async {
        while true {
            let batch = state.withLock { state -> [Waiting] in
                let batch = Array(state.waiting.prefix(Self.batchLimit))
                state.waiting.removeFirst(batch.count)
                if batch.isEmpty { state.storing = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                let outcomes = try await store(batch.map(\.message))
                guard outcomes.count == batch.count else { throw StoreError.corrupt("a batch of messages") }
                for (waiting, outcome) in zip(batch, outcomes) { waiting.continuation.resume(returning: outcome) }
            } catch {
                guard batch.count > 1 else {
                    for waiting in batch { waiting.continuation.resume(throwing: error) }
                    continue
                }
                for waiting in batch {
                    do {
                        guard let outcome = try await store([waiting.message]).first else { throw StoreError.corrupt("a message") }
                        waiting.continuation.resume(returning: outcome)
                    } catch {
                        waiting.continuation.resume(throwing: error)
                    }
                }
            }
        }
    }
}
