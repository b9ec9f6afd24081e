import ConclaveProtocol
import Synchronization

/// Group commit for application messages on PostgreSQL (issue 14): the
/// messages that arrive while batches are being stored wait, then go
/// together in the next one: one statement, one transaction and one WAL
/// flush for all of them, where each would otherwise pay its own. At most
/// ``concurrentBatches`` run at once per server process (so a batch held
/// up by a locked row does not hold up every message), each of at most
/// ``batchLimit`` messages and ``batchBytes`` of payloads. A batch that
/// fails is stored again message by message, concurrently, so that each
/// message still succeeds or fails alone. Past ``waitingLimit`` waiting
/// messages, a message is stored alone at once rather than wait. No
/// caller returns before its message's transaction has committed.
///
/// Once a batch has committed, its messages' ``Message/stored`` handlers
/// are told their outcomes on the batch's task, in the batch's order, and
/// only then do the callers resume: the server hands the messages to their
/// recipients' connections there, so that a connection gets a batch's
/// messages together and in sequence order, not one by one from as many
/// resumed tasks in any order.
final class MessageAppender: Sendable {
    struct Message: Sendable {
        let conversation: ConversationID
        let epoch: UInt64
        let generation: UInt64
        let delivery: Delivery
        /// Told the message's outcome once it has committed, before its caller resumes.
        var stored: ConclaveStore.StoredHandler?
    }

    typealias Outcome = (outcome: SendOutcome, sequences: [DeviceID: Int64])
    typealias Store = @Sendable ([Message]) async throws -> [Outcome]

    /// Messages in one batch at most.
    static let batchLimit = 256
    /// Payload bytes in one batch at most (a message larger than this is a batch of its own).
    static let batchBytes = 4 << 20
    /// Batches stored at once at most.
    static let concurrentBatches = 2
    /// Messages waiting for a batch at most.
    static let waitingLimit = 4 * batchLimit

    private struct Waiting {
        let message: Message
        let continuation: CheckedContinuation<Outcome, any Error>
    }

    private struct State {
        var waiting: [Waiting] = []
        var storing = 0
    }

    private let state = Mutex(State())

    /// Messages waiting for the next batch (tests).
    var waiting: Int { state.withLock { $0.waiting.count } }

    /// Stores `message` with the next batch (`store` stores a batch, its
    /// outcomes in order) and returns its outcome once that has committed.
    func append(_ message: Message, store: @escaping Store) async throws -> Outcome {
        if waiting >= Self.waitingLimit { return try await Self.storeAlone(message, store) }
        return try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { state in
                state.waiting.append(Waiting(message: message, continuation: continuation))
                guard state.storing < Self.concurrentBatches else { return false }
                state.storing += 1
                return true
            }
            if start { Task { await self.storeAll(store) } }
        }
    }

    /// Stores batch after batch while messages wait.
    private func storeAll(_ store: @escaping Store) async {
        while let batch = nextBatch() {
            do {
                let outcomes = try await store(batch.map(\.message))
                guard outcomes.count == batch.count else { throw StoreError.corrupt("a batch of messages") }
                for (waiting, outcome) in zip(batch, outcomes) { waiting.message.stored?(outcome.outcome, outcome.sequences) }
                for (waiting, outcome) in zip(batch, outcomes) { waiting.continuation.resume(returning: outcome) }
            } catch {
                guard batch.count > 1 else {
                    for waiting in batch { waiting.continuation.resume(throwing: error) }
                    continue
                }
                await withTaskGroup(of: Void.self) { group in
                    for waiting in batch {
                        group.addTask {
                            do {
                                waiting.continuation.resume(returning: try await Self.storeAlone(waiting.message, store))
                            } catch {
                                waiting.continuation.resume(throwing: error)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Stores one message as a batch of its own and tells its handler.
    static func storeAlone(_ message: Message, _ store: Store) async throws -> Outcome {
        guard let outcome = try await store([message]).first else { throw StoreError.corrupt("a message") }
        message.stored?(outcome.outcome, outcome.sequences)
        return outcome
    }

    /// The next batch: the longest prefix of the waiting messages within
    /// the limits (one message at least); nil, and one storing task fewer,
    /// when none waits.
    private func nextBatch() -> [Waiting]? {
        state.withLock { state in
            guard !state.waiting.isEmpty else {
                state.storing -= 1
                return nil
            }
            var (count, bytes) = (0, 0)
            for waiting in state.waiting.prefix(Self.batchLimit) {
                bytes += waiting.message.delivery.data.count
                guard count == 0 || bytes <= Self.batchBytes else { break }
                count += 1
            }
            let batch = Array(state.waiting.prefix(count))
            state.waiting.removeFirst(count)
            return batch
        }
    }
}
