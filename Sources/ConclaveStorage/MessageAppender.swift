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
/// only then are the callers told: the server hands the messages to their
/// recipients' connections there, so that a connection gets a batch's
/// messages together and in sequence order, not one by one from as many
/// resumed tasks in any order. A caller is told by a closure
/// (``append(_:store:done:)``), so that a message needs no task of its own
/// while it waits (a send on a WebSocket), or resumes its task
/// (``append(_:store:)``).
final class MessageAppender: Sendable {
    /// A class: a message passes through several arrays on its way to a
    /// batch, and a copy of it is then one reference, not one per part of
    /// its delivery.
    final class Message: Sendable {
        let conversation: ConversationID
        let epoch: UInt64
        let generation: UInt64
        let delivery: Delivery
        /// Told the message's outcome once it has committed, before its caller resumes.
        let stored: ConclaveStore.StoredHandler?

        init(
            conversation: ConversationID, epoch: UInt64, generation: UInt64, delivery: Delivery, stored: ConclaveStore.StoredHandler? = nil
        ) {
            self.conversation = conversation
            self.epoch = epoch
            self.generation = generation
            self.delivery = delivery
            self.stored = stored
        }
    }

    typealias Outcome = (outcome: SendOutcome, sequences: [DeviceID: Int64])
    typealias Store = @Sendable ([Message]) async throws -> [Outcome]
    /// Told a message's outcome once its batch has committed, or its error.
    typealias Done = @Sendable (Result<Outcome, any Error>) -> Void

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
        let done: Done
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
        try await withCheckedThrowingContinuation { continuation in
            append(message, store: store) { continuation.resume(with: $0) }
        }
    }

    /// Stores `message` with the next batch and tells `done` its outcome
    /// once that has committed: the caller does not wait.
    func append(_ message: Message, store: @escaping Store, done: @escaping Done) {
        let start = state.withLock { state -> Bool? in
            guard state.waiting.count < Self.waitingLimit else { return nil }
            state.waiting.append(Waiting(message: message, done: done))
            guard state.storing < Self.concurrentBatches else { return false }
            state.storing += 1
            return true
        }
        switch start {
        case nil: Task { done(await Self.result { try await Self.storeAlone(message, store) }) }
        case true?: Task { await self.storeAll(store) }
        case false?: break
        }
    }

    /// Stores batch after batch while messages wait.
    private func storeAll(_ store: @escaping Store) async {
        while let batch = nextBatch() {
            do {
                let outcomes = try await store(batch.map(\.message))
                guard outcomes.count == batch.count else { throw StoreError.corrupt("a batch of messages") }
                for (waiting, outcome) in zip(batch, outcomes) { waiting.message.stored?(outcome.outcome, outcome.sequences) }
                for (waiting, outcome) in zip(batch, outcomes) { waiting.done(.success(outcome)) }
            } catch {
                guard batch.count > 1 else {
                    for waiting in batch { waiting.done(.failure(error)) }
                    continue
                }
                await withTaskGroup(of: Void.self) { group in
                    for waiting in batch {
                        group.addTask { waiting.done(await Self.result { try await Self.storeAlone(waiting.message, store) }) }
                    }
                }
            }
        }
    }

    private static func result(_ body: () async throws -> Outcome) async -> Result<Outcome, any Error> {
        do { return .success(try await body()) } catch { return .failure(error) }
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
            guard count < state.waiting.count else {  // all of them: handed over whole, not copied
                defer { state.waiting = [] }
                return state.waiting
            }
            let batch = Array(state.waiting.prefix(count))
            state.waiting.removeFirst(count)
            return batch
        }
    }
}
