import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging
import ServiceLifecycle

/// Sends the federation outbox: for each destination, its oldest request
/// first, destinations in parallel; a final refusal (``ErrorCode/isFinal``)
/// is dropped with a warning, anything else is retried with exponential
/// backoff (1 s … 5 min), and waits hold up only their own destination.
struct FederationRelay: Service {
    let store: ConclaveStore
    let client: FederationClient
    let clock: ServerClock
    let idleInterval: Duration
    let ready: Gate
    let metrics: ServerMetrics
    let logger: Logger

    /// On a shared database one server process at a time sends the outbox.
    func run() async throws {
        await ready.wait()
        do {
            try await cancelWhenGracefulShutdown { try await store.exclusively(.federationRelay) { await relay() } }
        } catch is CancellationError {}
    }

    private func relay() async {
        while !Task.isCancelledOrShuttingDown {
            var progressed = false
            do {
                // The head of each destination's queue, all at once: a slow peer holds up only its own queue.
                let due = try await store.dueOutbox(now: clock.now)
                // A shutdown cancels requests in flight: each stays queued and goes out after the restart.
                progressed = await cancelWhenGracefulShutdown {
                    await withTaskGroup(of: Bool.self) { group in
                        for item in due { group.addTask { await deliver(item) } }
                        return await group.reduce(!due.isEmpty) { $0 && $1 }
                    }
                }
            } catch {
                logger.warning("federation outbox failed", metadata: ["error.type": "\(type(of: error))"])
            }
            // An empty outbox, or a store that could not record an attempt, waits before the next round.
            if !progressed, !(await Task.pause(for: idleInterval)) { return }
        }
    }

    /// Sends one item; false when the store could not record the outcome.
    func deliver(_ item: OutboxItem) async -> Bool {
        do {
            guard let peer = try await store.peer(item.destination) else {
                logger.warning("federation: dropped a request for a network no longer pinned", metadata: ["peer": "\(item.destination)"])
                try await store.completeOutbox(item.id)
                return true
            }
            let answer: PeerAnswer
            do { answer = try await client.send(.POST, to: peer.peer, path: item.path, raw: item.body) } catch {
                try await retryLater(item)
                return true
            }
            if (200..<300).contains(answer.status) {
                try await store.completeOutbox(item.id)
            } else if let code = answer.refusal?.code, code.isFinal {
                logger.warning(
                    "federation: a peer refused a request; dropped", metadata: ["peer": "\(item.destination)", "code": "\(code)"])
                try await store.completeOutbox(item.id)
            } else {
                try await retryLater(item)
            }
            return true
        } catch {
            // The store failed: the item stays due, and the next round (after the idle wait) takes it again.
            logger.warning("federation outbox: could not record an attempt", metadata: ["error.type": "\(type(of: error))"])
            return false
        }
    }

    func retryLater(_ item: OutboxItem) async throws {
        metrics.federationRetry(peer: "\(item.destination)")
        let delay = min(300, pow(2, Double(min(item.attempts, 10))))
        try await store.deferOutbox(item.id, attempts: item.attempts + 1, until: clock.now.addingTimeInterval(delay))
    }
}

extension Task where Success == Never, Failure == Never {
    static var isCancelledOrShuttingDown: Bool { isCancelled || isShuttingDownGracefully }

    /// Waits `duration` unless the service is cancelled or shut down
    /// meanwhile; false then.
    static func pause(for duration: Duration) async -> Bool {
        do {
            try await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
            return true
        } catch {
            return false
        }
    }
}
