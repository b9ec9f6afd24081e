import Foundation
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Password hashing (scrypt: 32 MiB and tens of milliseconds each) on
/// threads of its own, so that a flood of sign-ins cannot starve the
/// cooperative pool that serves every other request (rule A6). At most
/// `threads` hashes run at once and `queue` wait; a request beyond that is
/// refused at once with 429.
final class PasswordHashingPool: Service, Sendable {
    private let pool: NIOThreadPool
    private let limit: Int
    private let inFlight = Atomic<Int>(0)

    init(threads: Int, queue: Int) {
        pool = NIOThreadPool(numberOfThreads: max(1, threads))
        pool.start()
        limit = max(1, threads) + max(0, queue)
    }

    /// Runs `work` on the pool, or throws 429 when the pool and its queue are full.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        guard inFlight.wrappingAdd(1, ordering: .relaxed).newValue <= limit else {
            inFlight.wrappingSubtract(1, ordering: .relaxed)
            throw APIError(.rateLimited, "too many sign-ins at once; try again in a moment", retryAfter: 1)
        }
        defer { inFlight.wrappingSubtract(1, ordering: .relaxed) }
        return try await pool.runIfActive { try work() }
    }

    /// Hashes running or waiting.
    var load: Int { inFlight.load(ordering: .relaxed) }

    /// Waits for the server to stop, then stops the threads.
    func run() async throws {
        try? await gracefulShutdown()
        try await pool.shutdownGracefully()
    }
}
