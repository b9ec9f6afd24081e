import ConclaveProtocol
import Dispatch
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The embedded default: one SQLite file in WAL mode, `synchronous=FULL`
/// so that a committed transaction survives a crash of the process or the
/// machine. One writer connection (SQLite allows one writer at a time) and a
/// few reader connections that WAL lets run beside it, each an
/// ``SQLiteLink`` with a thread of its own: a batch of transactions runs on
/// the writer's thread in one hop, its statements prepared once.
///
/// Write transactions are **group-committed**: transactions that arrive
/// while another batch is being written wait, then run together in one
/// SQLite transaction and share one fsync (one writer task writes batch after
/// batch while any are queued); a batch in which one job fails
/// runs again job by job, so each still commits or rolls back on its own.
/// No caller returns before its COMMIT is durable: the writer commits
/// with `synchronous=NORMAL` (in WAL mode: consistent after a crash, the
/// WAL not yet flushed) and goes on with the next batch while a
/// ``WALSync`` flushes the WAL (`fdatasync`) and only then tells the
/// batch's callers. So the flush of one batch overlaps the writing of
/// the next, instead of the writer waiting for the disk between batches.
public final class SQLiteDatabase: SQLDatabase {
    public let dialect = SQLDialect.sqlite
    private let writer: SQLiteLink
    private let readers: [SQLiteLink]
    /// The write transactions waiting for the next batch, and whether a
    /// writer task is running.
    private let queue = Mutex<(jobs: [WriteJob], writing: Bool)>((jobs: [], writing: false))
    private let readerCursor = RoundRobin()
    private let walSync: WALSync

    public static func open(path: String, readers readerCount: Int = 2, logger: Logger) async throws -> SQLiteDatabase {
        let writer = try SQLiteLink(path: path, name: "sqlite-writer")
        var readers: [SQLiteLink] = []
        do {
            // NORMAL: a commit does not flush the WAL itself; WALSync does, before any caller is told (see above).
            for pragma in ["PRAGMA busy_timeout=10000", "PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"] {
                _ = try await writer.query(pragma, [])
            }
            for index in 0..<max(1, readerCount) {
                let reader = try SQLiteLink(path: path, name: "sqlite-reader-\(index)")
                readers.append(reader)
                for pragma in ["PRAGMA foreign_keys=ON", "PRAGMA busy_timeout=10000", "PRAGMA query_only=ON"] {
                    _ = try await reader.query(pragma, [])
                }
            }
        } catch {
            for link in [writer] + readers { link.close() }
            throw error
        }
        return SQLiteDatabase(writer: writer, readers: readers, walSync: WALSync(path: path + "-wal"))
    }

    private init(writer: SQLiteLink, readers: [SQLiteLink], walSync: WALSync) {
        self.writer = writer
        self.readers = readers
        self.walSync = walSync
    }

    /// Queues the transaction for the writer task (starting one if none
    /// runs) and waits until its batch has committed (or it failed).
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) async throws -> T) async throws -> T {
        let result = WriteResult<T>()
        let job = WriteJob { connection in result.set(try await body(connection)) }
        let startWriter = queue.withLock { queue -> Bool in
            queue.jobs.append(job)
            defer { queue.writing = true }
            return !queue.writing
        }
        if startWriter { Task(executorPreference: writer) { await self.writeUntilEmpty() } }
        if let error = await job.outcome() { throw error }
        guard let value = result.value else { throw StoreError.database("a write transaction did not run") }
        return value
    }

    /// The writer task: writes what is queued, batch after batch, and ends
    /// when nothing is. Callers only wait for their own job, so a batch of
    /// n jobs costs one hand-off to each caller, not n turns of a lock.
    private func writeUntilEmpty() async {
        while true {
            let jobs = queue.withLock { queue -> [WriteJob] in
                let batch = Array(queue.jobs.prefix(Self.batchLimit))
                queue.jobs.removeFirst(batch.count)
                if batch.isEmpty { queue.writing = false }
                return batch
            }
            guard !jobs.isEmpty else { return }
            await writeBatch(jobs)
        }
    }

    /// Write transactions in one batch at most.
    static let batchLimit = 512

    /// Runs the jobs as one transaction. Jobs rarely fail, so no savepoints
    /// are spent on them: if one does fail, the whole batch rolls back and
    /// each job runs again in a transaction of its own, so that every job
    /// still commits or fails alone.
    private func writeBatch(_ jobs: [WriteJob]) async {
        let connection = SQLiteTransaction(link: writer)
        if jobs.count > 1 {
            do {
                try await connection.execute("BEGIN IMMEDIATE")
                for job in jobs { try await job.run(connection) }
                try await connection.execute("COMMIT")
                walSync.finish(jobs)
                return
            } catch {
                try? await connection.execute("ROLLBACK")
            }
        }
        for job in jobs { await runAlone(job, connection) }
    }

    /// One job in its own transaction.
    private func runAlone(_ job: WriteJob, _ connection: SQLiteTransaction) async {
        do {
            try await connection.execute("BEGIN IMMEDIATE")
            try await job.run(connection)
            try await connection.execute("COMMIT")
            walSync.finish([job])
        } catch {
            try? await connection.execute("ROLLBACK")
            job.finish(error)
        }
    }

    /// One statement in the writer's next batch.
    public func autocommit(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try await transaction { try await $0.query(sql, binds) }
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLConnection) async throws -> T) async throws -> T {
        let reader = readers[readerCursor.next(modulo: readers.count)]
        return try await withTaskExecutorPreference(reader) { try await body(SQLiteTransaction(link: reader)) }
    }

    /// One server process owns the file.
    public var isShared: Bool { false }

    /// Nothing to follow: no other process writes the file.
    public func follow(
        channel: String, connected: @escaping @Sendable () async -> Void, notified: @escaping @Sendable (String) async -> Void
    ) async throws {}

    /// No other process to wait for.
    public func exclusively(lock key: Int64, _ body: @Sendable () async throws -> Void) async throws { try await body() }

    public func close() async throws {
        await walSync.drain()
        for link in [writer] + readers { link.close() }
    }
}

/// Flushes the WAL of committed batches and only then tells their callers
/// that they committed: one `fdatasync` for every batch committed since
/// the last, on a serial queue of its own (a thread of Dispatch's blocks
/// on the disk, not the writer). A failed flush is every waiting caller's
/// error: their transactions may not survive a crash of the machine.
final class WALSync: Sendable {
    private let path: String
    private let queue = DispatchQueue(label: "conclave.sqlite.wal-sync")
    private let waiting = Mutex<[WriteJob]>([])
    /// The WAL file, opened at the first flush, and opened again if SQLite replaced it.
    private let file = Mutex<(descriptor: Int32, inode: UInt64)?>(nil)

    init(path: String) { self.path = path }

    deinit { file.withLock { $0.map { _ = Glibc.close($0.descriptor) } } }

    /// The jobs' batch has committed: they are told once the WAL is flushed.
    func finish(_ jobs: [WriteJob]) {
        waiting.withLock { $0.append(contentsOf: jobs) }
        queue.async { self.flush() }
    }

    /// Waits until every batch committed so far has been flushed and told.
    func drain() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async { continuation.resume() }
        }
    }

    private func flush() {
        let jobs = waiting.withLock { jobs in
            defer { jobs = [] }
            return jobs
        }
        guard !jobs.isEmpty else { return }
        let error = syncFile()
        for job in jobs { job.finish(error) }
    }

    private func syncFile() -> (any Error)? {
        file.withLock { file -> (any Error)? in
            var status = stat()
            guard stat(path, &status) == 0 else { return StoreError.database("SQLite: the WAL file is missing") }
            if let open = file, open.inode != UInt64(status.st_ino) {
                _ = Glibc.close(open.descriptor)
                file = nil
            }
            if file == nil {
                let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
                guard descriptor >= 0 else { return StoreError.database("SQLite: cannot open the WAL file to flush it") }
                file = (descriptor, UInt64(status.st_ino))
            }
            guard let descriptor = file?.descriptor, fdatasync(descriptor) == 0 else {
                return StoreError.database("SQLite: flushing the WAL failed (errno \(errno))")
            }
            return nil
        }
    }
}

/// One queued write transaction, and how it ended: the writer task
/// finishes it once, and its caller waits for that.
final class WriteJob: Sendable {
    let run: @Sendable (any SQLConnection) async throws -> Void
    private let state = Mutex<(finished: Bool, error: (any Error)?, waiter: CheckedContinuation<(any Error)?, Never>?)>(
        (false, nil, nil))

    init(_ run: @escaping @Sendable (any SQLConnection) async throws -> Void) { self.run = run }

    /// Records the outcome (nil: committed) and wakes the caller.
    func finish(_ error: (any Error)?) {
        let waiter = state.withLock { state -> CheckedContinuation<(any Error)?, Never>? in
            state.finished = true
            state.error = error
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: error)
    }

    /// Waits until the job is finished; its error, or nil once committed.
    func outcome() async -> (any Error)? {
        await withCheckedContinuation { continuation in
            let finished = state.withLock { state -> (any Error)?? in
                if state.finished { return .some(state.error) }
                state.waiter = continuation
                return .none
            }
            if let error = finished { continuation.resume(returning: error) }
        }
    }
}

/// A write transaction's value, set inside the batch.
final class WriteResult<T: Sendable>: Sendable {
    private let stored = Mutex<T?>(nil)

    func set(_ value: T) { stored.withLock { $0 = value } }
    var value: T? { stored.withLock { $0 } }
}

/// Spreads reads over the reader connections.
final class RoundRobin: Sendable {
    private let counter = Mutex(0)

    func next(modulo count: Int) -> Int {
        counter.withLock { value in
            value = (value + 1) % count
            return value
        }
    }
}

/// Statements on one ``SQLiteLink``.
struct SQLiteTransaction: SQLConnection {
    let link: SQLiteLink

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] { try await link.query(sql, binds) }
}
