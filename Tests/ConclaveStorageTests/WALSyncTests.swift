import Foundation
import Testing

@testable import ConclaveStorage

/// The SQLite WAL's flush, which tells a batch's callers, and lets reads
/// return, only once the batch is on disk.
@Suite struct WALSyncTests {
    @Test("A read that ended while a batch was committing, and the batch's callers, wait for its flush")
    func readsAndCallersWaitForTheFlush() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-wal-\(UUID().uuidString)").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3])))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let sync = try WALSync(path: path)
        // Nothing committing: a read returns at once.
        try await sync.waitUntilFlushed()

        let batch = sync.committing()
        let read = Task { try await sync.waitUntilFlushed() }
        var turns = 0
        while sync.waitingReads == 0, turns < 100_000 {
            await Task.yield()
            turns += 1
        }
        #expect(sync.waitingReads == 1)
        let job = WriteJob { _ in }
        sync.ended(batch, jobs: [job])
        #expect(await job.outcome() == nil)
        try await read.value
        #expect(sync.waitingReads == 0)
    }

    @Test("The WAL must exist to be flushed")
    func missingFile() {
        #expect(throws: StoreError.self) { try WALSync(path: "/nonexistent/conclave-wal") }
    }
}
