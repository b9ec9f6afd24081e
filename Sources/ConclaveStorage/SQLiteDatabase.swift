import ConclaveProtocol
import Dispatch
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The embedded default: one SQLite file in WAL mode, every acknowledged
/// transaction flushed to disk, so that it survives a crash of the process
/// or the machine. One writer connection (SQLite allows one writer at a time) and a
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
/// A read waits, before it returns, until every batch committed when it
/// ended is flushed too: nothing a power cut could still take back is
/// acted on (a log head signed, a commit fetched, a deletion obeyed). A
/// flush that fails is final: every later transaction and read fails, and
/// the server must be restarted (the kernel reports a failed write once).
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
            // secure_delete: what is deleted (acknowledged or expired ciphertext) is overwritten, whatever the build's default.
            for pragma in [
                "PRAGMA busy_timeout=10000", "PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON",
                "PRAGMA secure_delete=ON",
            ] {
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
        do {
            // A first write creates the WAL, whose name SQLite gives (it resolves links in the database's path).
            _ = try await writer.query("PRAGMA user_version", [])
            let sync = try WALSync(path: try await writer.walPath())
            return SQLiteDatabase(writer: writer, readers: readers, walSync: sync)
        } catch {
            for link in [writer] + readers { link.close() }
            throw error
        }
    }

    private init(writer: SQLiteLink, readers: [SQLiteLink], walSync: WALSync) {
        self.writer = writer
        self.readers = readers
        self.walSync = walSync
    }

    /// Queues the transaction for the writer task (starting one if none
    /// runs) and waits until its batch has committed (or it failed).
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) async throws -> T) async throws -> T {
        try walSync.check()
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
                try await commit(jobs, connection)
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
            try await commit([job], connection)
        } catch {
            try? await connection.execute("ROLLBACK")
            job.finish(error)
        }
    }

    /// Commits a batch; its jobs are told once the WAL is flushed. The
    /// batch is numbered before its COMMIT, so that a read that sees it
    /// waits for that flush.
    private func commit(_ jobs: [WriteJob], _ connection: SQLiteTransaction) async throws {
        let batch = walSync.committing()
        do {
            try await connection.execute("COMMIT")
        } catch {
            walSync.ended(batch, jobs: [])
            throw error
        }
        walSync.ended(batch, jobs: jobs)
    }

    /// One statement in the writer's next batch.
    public func autocommit(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try await transaction { try await $0.query(sql, binds) }
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLConnection) async throws -> T) async throws -> T {
        let reader = readers[readerCursor.next(modulo: readers.count)]
        let value = try await withTaskExecutorPreference(reader) { try await body(SQLiteTransaction(link: reader)) }
        try await walSync.waitUntilFlushed()
        return value
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
        // A last, empty transaction: every batch before it has committed and been flushed once it returns.
        _ = try? await transaction { _ in }
        for link in [writer] + readers { link.close() }
    }
}

/// Flushes the WAL of committed batches and only then tells their callers
/// that they committed: one `fdatasync` for every batch committed since
/// the last, on a serial queue of its own (a thread of Dispatch's blocks
/// on the disk, not the writer). Batches are numbered as they commit, in
/// order (one writer); reads wait for the batches committed when they
/// ended. A failed flush fails every waiting caller and read, and every
/// later one: the kernel reports a failed write once, so a later flush
/// could succeed over a gap in the WAL.
final class WALSync: Sendable {
    private struct State {
        /// Batches whose COMMIT has begun, and those whose COMMIT has ended.
        var begun: UInt64 = 0
        var ended: UInt64 = 0
        /// Batches covered by a completed flush.
        var flushed: UInt64 = 0
        var jobs: [(batch: UInt64, job: WriteJob)] = []
        var readers: [(batch: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var failure: StoreError?
    }

    private let queue = DispatchQueue(label: "conclave.sqlite.wal-sync")
    private let state = Mutex(State())
    private let descriptor: Int32

    /// Opens the WAL file at `path` (as SQLite names it) for flushing.
    init(path: String) throws {
        descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw StoreError.database("SQLite: cannot open the WAL file to flush it") }
    }

    deinit { _ = Glibc.close(descriptor) }

    /// Reads waiting for a flush (tests).
    var waitingReads: Int { state.withLock { $0.readers.count } }

    /// Throws once a flush has failed.
    func check() throws {
        if let failure = state.withLock({ $0.failure }) { throw failure }
    }

    /// A batch's COMMIT begins: its number.
    func committing() -> UInt64 {
        state.withLock { state in
            state.begun += 1
            return state.begun
        }
    }

    /// The batch's COMMIT ended (its jobs, none if it failed): they are
    /// told once the WAL is flushed.
    func ended(_ batch: UInt64, jobs: [WriteJob]) {
        state.withLock { state in
            state.ended = batch
            state.jobs += jobs.map { (batch, $0) }
        }
        queue.async { self.flush() }
    }

    /// Waits until every batch whose COMMIT had begun by now is flushed.
    func waitUntilFlushed() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome = state.withLock { state -> Result<Void, StoreError>? in
                if let failure = state.failure { return .failure(failure) }
                guard state.flushed < state.begun else { return .success(()) }
                state.readers.append((state.begun, continuation))
                return nil
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }

    private func flush() {
        let target = state.withLock { $0.ended }
        guard target > state.withLock({ $0.flushed }) else { return }
        var result: Int32
        repeat { result = fdatasync(descriptor) } while result != 0 && errno == EINTR
        let failure = result == 0 ? nil : StoreError.database("SQLite: flushing the WAL failed (errno \(errno)); restart the server")
        let (jobs, readers) = state.withLock { state in
            if let failure { state.failure = state.failure ?? failure }
            state.flushed = failure == nil ? target : state.flushed
            let failed = state.failure != nil
            let jobs = state.jobs.filter { failed || $0.batch <= target }
            state.jobs.removeAll { failed || $0.batch <= target }
            let readers = state.readers.filter { failed || $0.batch <= target }
            state.readers.removeAll { failed || $0.batch <= target }
            return (jobs.map(\.job), readers.map(\.continuation))
        }
        let error = state.withLock { $0.failure }
        for job in jobs { job.finish(error) }
        for reader in readers {
            if let error { reader.resume(throwing: error) } else { reader.resume() }
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

    func insertReturningID(_ sql: String, _ binds: [SQLValue]) async throws -> Int64? { try await link.insert(sql, binds) }
}
