import Foundation
import Synchronization

/// Copies a child process's output to its log file as it comes, and tells
/// a waiter when a marker line appears (the server says it listens) or the
/// process exits first. Event-driven: nothing polls.
final class LogWatcher: Sendable {
    private struct State {
        var seen = false
        var exited = false
        var waiters: [CheckedContinuation<Void, any Error>] = []
        /// Everything read so far, and who waits for which text in it.
        var text = ""
        var textWaiters: [(id: UUID, text: String, continuation: CheckedContinuation<Void, any Error>)] = []
    }

    private let state = Mutex(State())
    private let signal = DispatchSemaphore(value: 0)
    /// Signalled once the output has been read to its end.
    private let drained = DispatchSemaphore(value: 0)
    let marker: String

    init(copyingTo log: FileHandle, from pipe: Pipe, marker: String) {
        self.marker = marker
        // The output is read to its end on a thread of its own, which keeps the pipe open until then
        // (a FileHandle readabilityHandler whose handle goes away first corrupts Dispatch's event loop).
        let drained = drained
        Thread { [weak self] in
            defer { drained.signal() }
            var tail = ""
            while true {
                let data = pipe.fileHandleForReading.availableData
                if data.isEmpty { break }
                log.write(data)
                self?.append(String(decoding: data, as: UTF8.self))
                // A marker may be split between two reads: look at the last line's tail too.
                let text = tail + String(decoding: data, as: UTF8.self)
                tail = String(text.suffix(marker.count))
                if text.contains(marker) { self?.finish(nil) }
            }
        }.start()
    }

    /// Waits (at most `timeout`) until the output has been read to its
    /// end, so that the log holds the process's last words.
    func waitUntilDrained(timeout: TimeInterval = 5) {
        if drained.wait(timeout: .now() + timeout) == .success { drained.signal() }
    }

    /// Called when the process ends.
    func processExited() {
        finish(LogWatcherError("the process exited before it logged \"\(marker)\""))
        let waiters = state.withLock { state in
            state.exited = true
            defer { state.textWaiters = [] }
            return state.textWaiters
        }
        for waiter in waiters {
            waiter.continuation.resume(throwing: LogWatcherError("the process exited before it logged \"\(waiter.text)\""))
        }
    }

    private func append(_ text: String) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.text += text
            let (met, waiting) = (
                state.textWaiters.filter { state.text.contains($0.text) }, state.textWaiters.filter { !state.text.contains($0.text) }
            )
            state.textWaiters = waiting
            return met.map(\.continuation)
        }
        for continuation in ready { continuation.resume() }
    }

    /// Waits until the output holds `text` (now or later); throws if the
    /// process exits first, or when the waiting task is cancelled.
    func wait(for text: String) async throws {
        let id = UUID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let now: Result<Void, any Error>? = state.withLock { state in
                    if state.text.contains(text) { return .success(()) }
                    if state.exited { return .failure(LogWatcherError("the process exited before it logged \"\(text)\"")) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.textWaiters.append((id, text, continuation))
                    return nil
                }
                if let now { continuation.resume(with: now) }
            }
        } onCancel: {
            let cancelled = state.withLock { state in
                let found = state.textWaiters.first { $0.id == id }
                state.textWaiters.removeAll { $0.id == id }
                return found
            }
            cancelled?.continuation.resume(throwing: CancellationError())
        }
    }

    private func finish(_ failure: LogWatcherError?) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            guard !state.seen, !state.exited else { return [] }
            if failure == nil { state.seen = true } else { state.exited = true }
            defer { state.waiters = [] }
            return state.waiters
        }
        signal.signal()
        for waiter in waiters {
            if let failure { waiter.resume(throwing: failure) } else { waiter.resume() }
        }
    }

    private var outcome: Result<Void, any Error>? {
        state.withLock { state in
            if state.seen { return .success(()) }
            if state.exited { return .failure(LogWatcherError("the process exited before it logged \"\(marker)\"")) }
            return nil
        }
    }

    /// Waits until the marker appears; throws if the process exits first.
    func waitForMarker() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let now: Result<Void, any Error>? = state.withLock { state in
                if state.seen { return .success(()) }
                if state.exited { return .failure(LogWatcherError("the process exited before it logged \"\(marker)\"")) }
                state.waiters.append(continuation)
                return nil
            }
            if let now { continuation.resume(with: now) }
        }
    }

    /// The same, blocking, for synchronous callers; false on timeout.
    func waitForMarker(timeout: TimeInterval) throws -> Bool {
        if let outcome {
            try outcome.get()
            return true
        }
        guard signal.wait(timeout: .now() + timeout) == .success else { return false }
        signal.signal()
        try outcome?.get()
        return outcome != nil
    }
}

struct LogWatcherError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
