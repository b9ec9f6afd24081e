import ConclaveClient
import ConclaveProtocol
import Foundation

/// A wait that took longer than its deadline: the test fails rather than
/// hanging. (A deadline guards a wait; it never stands in for the event.)
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let description: String
}

/// Runs `body`, failing with ``DeadlineExceeded`` if it has not finished
/// within `timeout`.
public func withDeadline<T: Sendable>(_ timeout: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws
    -> T
{
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw DeadlineExceeded(description: "\(what) did not happen within \(timeout)")
        }
        return value
    }
}

/// Runs blocking work (a child process, a pipe read to its end) on a
/// thread of its own and awaits it, so that it never holds one of the
/// cooperative pool's threads: a two-core runner has two, and the
/// in-process servers of other tests need them meanwhile.
public func offThePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

extension ConclaveClient {
    /// Processes this device's events as the server pushes them (its
    /// WebSocket), until `done` holds for everything received so far; the
    /// events are returned. Fails after `timeout`.
    public func receive(
        until done: @escaping @Sendable ([ClientEvent]) async throws -> Bool, timeout: Duration = .seconds(30)
    ) async throws -> [ClientEvent] {
        let pending = try await receive()
        if try await done(pending) { return pending }
        return try await withDeadline(timeout, "the awaited events") {
            var events = pending
            for try await event in self.events() {
                events.append(event)
                if try await done(events) { return events }
            }
            throw DeadlineExceeded(description: "the server ended the event stream before the awaited events")
        }
    }

    /// Receives until `count` messages have arrived; returns their texts.
    public func receiveTexts(_ count: Int, timeout: Duration = .seconds(30)) async throws -> [String] {
        texts(try await receive(until: { texts($0).count >= count }, timeout: timeout))
    }

    /// Receives until this device sees exactly these members in a conversation.
    public func settle(_ id: ConversationID, to members: [UserAddress], timeout: Duration = .seconds(30)) async throws {
        _ = try await receive(until: { _ in try await self.findConversation(id.description).members == members.sorted() }, timeout: timeout)
    }
}
