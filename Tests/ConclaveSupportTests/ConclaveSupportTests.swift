import ConclaveSupport
import Synchronization
import Testing

/// What the lock's holders saw: how many were inside at once, and in which order they ran.
final class HolderLog: Sendable {
    private let state = Mutex((inside: 0, most: 0, order: [Int]()))

    func enter(_ index: Int) {
        state.withLock { state in
            state.inside += 1
            state.most = max(state.most, state.inside)
            state.order.append(index)
        }
    }

    func leave() { state.withLock { $0.inside -= 1 } }
    var most: Int { state.withLock { $0.most } }
    var order: [Int] { state.withLock { $0.order } }
}

@Suite struct AsyncLockTests {
    /// Holders run one at a time and in the order they asked.
    @Test func holdersRunOneAtATimeInOrder() async throws {
        let lock = AsyncLock()
        let log = HolderLog()
        await lock.lock()  // held while the waiters queue up, so their order is the order they asked in
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<20 {
                group.addTask {
                    try await lock.withLock {
                        log.enter(index)
                        await Task.yield()
                        log.leave()
                    }
                }
                while await lock.waiting < index + 1 { await Task.yield() }
            }
            await lock.unlock()
            try await group.waitForAll()
        }
        #expect(log.most == 1)
        #expect(log.order == Array(0..<20))
    }

    /// A throwing holder still releases the lock.
    @Test func aThrowingHolderReleases() async throws {
        struct Failure: Error {}
        let lock = AsyncLock()
        await #expect(throws: Failure.self) { try await lock.withLock { throw Failure() } }
        #expect(try await lock.withLock { 42 } == 42)
    }
}

@Suite struct LoopbackPortTests {
    @Test func aFreePortIsAnUnprivilegedPort() throws {
        let port = try #require(LoopbackPort.free())
        #expect((1024...65535).contains(port))
    }
}
