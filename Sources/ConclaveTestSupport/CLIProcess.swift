import Foundation
import Synchronization

/// A `conclave` command running in the background (e.g. `receive --wait`),
/// whose output a test waits on line by line: no sleeps, no polling.
public final class CLIProcess: Sendable {
    private struct State {
        var output = ""
        var error = ""
        var exited = false
        var waiters: [(text: String, continuation: CheckedContinuation<Void, any Error>)] = []
    }

    private let process: Process
    private let state = Mutex(State())
    /// Left by the exit and by the end of each of the two outputs.
    private let done = DispatchGroup()

    /// Starts `conclave ARGS…`.
    public init(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ConclaveServerProcess.binary)
        process.arguments = arguments
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = FileHandle.nullDevice
        self.process = process
        for _ in 0..<3 { done.enter() }
        let done = done
        process.terminationHandler = { _ in done.leave() }
        done.notify(queue: .global()) { [weak self] in self?.finish() }
        try process.run()
        // Each output is read to its end on a thread of its own, which keeps its pipe open until then
        // (a FileHandle readabilityHandler whose handle goes away first corrupts Dispatch's event loop).
        readToEnd(output, error: false)
        readToEnd(error, error: true)
    }

    private func readToEnd(_ pipe: Pipe, error: Bool) {
        let done = done
        Thread { [weak self] in
            while true {
                let data = pipe.fileHandleForReading.availableData
                if data.isEmpty { break }
                self?.take(data, error: error)
            }
            done.leave()
        }.start()
    }

    private func take(_ data: Data, error: Bool) {
        let text = String(decoding: data, as: UTF8.self)
        let ready = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            if error { state.error += text } else { state.output += text }
            let output = state.output
            let (met, waiting) = state.waiters.reduce(
                into: ([CheckedContinuation<Void, any Error>](), [(String, CheckedContinuation<Void, any Error>)]())
            ) {
                if output.contains($1.text) { $0.0.append($1.continuation) } else { $0.1.append($1) }
            }
            state.waiters = waiting.map { (text: $0.0, continuation: $0.1) }
            return met
        }
        for continuation in ready { continuation.resume() }
    }

    private func finish() {
        let waiters = state.withLock { state -> [(text: String, continuation: CheckedContinuation<Void, any Error>)] in
            state.exited = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters {
            waiter.continuation.resume(throwing: TestSupportError("the command exited before it printed \"\(waiter.text)\""))
        }
    }

    /// Waits until the standard output holds `text`; throws if the command
    /// exits first.
    public func waitForOutput(containing text: String) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome: Bool? = state.withLock { state in
                if state.output.contains(text) { return true }
                if state.exited { return false }
                state.waiters.append((text, continuation))
                return nil
            }
            switch outcome {
            case true?: continuation.resume()
            case false?: continuation.resume(throwing: TestSupportError("the command exited before it printed \"\(text)\""))
            case nil: break
            }
        }
    }

    /// The standard output so far.
    public var output: String { state.withLock { $0.output } }

    /// Waits for the command to exit; returns its status and output.
    public func waitForExit() async -> (status: Int32, output: String, error: String) {
        await withCheckedContinuation { continuation in done.notify(queue: .global()) { continuation.resume() } }
        return state.withLock { (process.terminationStatus, $0.output, $0.error) }
    }

    deinit { if process.isRunning { process.terminate() } }
}
