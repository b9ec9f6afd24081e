import CSQLite
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One SQLite connection with a thread of its own, which is also a task
/// executor: a transaction runs with this executor preferred, so every
/// statement of it runs on the connection's thread, one after the other, in
/// one hop (SQLiteNIO takes a round trip to a thread pool per statement).
/// Statements are prepared once (`SQLITE_PREPARE_PERSISTENT`) and kept.
///
/// The connection is touched only on its thread: ``query(_:_:)`` hops
/// there first when it is called from anywhere else.
final class SQLiteLink: TaskExecutor, @unchecked Sendable {  // `handle` and `statements` are used on `thread` only
    private let handle: OpaquePointer
    private var statements: [StatementKey: OpaquePointer] = [:]
    private let jobs = SQLiteJobQueue()
    /// The connection's thread while it runs (0 before and after).
    private let threadID = Atomic<UInt>(0)

    /// Statements kept at most; past it they are finalised and prepared again.
    static let statementLimit = 256

    /// Opens the database file (creating it) and starts the thread.
    init(path: String, name: String) throws(StoreError) {
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        guard sqlite3_open_v2(path, &handle, flags, nil) == SQLITE_OK, let handle else {
            let reason = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let handle { sqlite3_close_v2(handle) }
            throw StoreError.database("cannot open the SQLite database: \(reason)")
        }
        sqlite3_extended_result_codes(handle, 1)  // tells a unique key apart from a broken reference
        self.handle = handle
        let thread = Thread {
            self.threadID.store(UInt(pthread_self()), ordering: .releasing)
            self.jobs.run { $0.runSynchronously(on: self.asUnownedTaskExecutor()) }
            // A thread id is reused once its thread ends: a later thread of Dispatch's must not pass for this one.
            self.threadID.store(0, ordering: .releasing)
            self.finish()
        }
        thread.name = name
        thread.start()
    }

    /// After ``close()``, jobs of tasks that still prefer this executor run
    /// on Dispatch's threads instead: their queries throw (the connection is
    /// closed) rather than wait forever for a thread that has ended.
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        guard jobs.append(job) else {
            let executor = asUnownedTaskExecutor()
            DispatchQueue.global().async { job.runSynchronously(on: executor) }
            return
        }
    }

    /// Whether the caller runs on this connection's thread.
    private var isCurrent: Bool {
        let id = threadID.load(ordering: .acquiring)
        return id != 0 && pthread_equal(pthread_t(id), pthread_self()) != 0
    }

    /// Runs one statement and returns its rows, on the connection's thread.
    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] { try await onThread { try self.run(sql, binds) } }

    /// Runs one `INSERT` and returns the id of the row it inserted, nil if
    /// it inserted none (``SQLConnection/insertReturningID(_:_:)``).
    func insert(_ sql: String, _ binds: [SQLValue]) async throws -> Int64? { try await onThread { try self.runInsert(sql, binds) } }

    /// Runs `body` on the connection's thread: at once when the caller is on it.
    private func onThread<T: Sendable>(_ body: @Sendable () throws -> T) async throws -> T {
        guard !jobs.isStopped else { throw StoreError.database("SQLite: the database is closed") }
        if isCurrent { return try body() }
        return try await withTaskExecutorPreference(self) {
            // Closed meanwhile: the job runs on one of Dispatch's threads, which must not touch the connection (its
            // thread may be finalising the statements at this moment).
            guard self.isCurrent else { throw StoreError.database("SQLite: the database is closed") }
            return try body()
        }
    }

    /// The path of the connection's write-ahead log, as SQLite names it.
    func walPath() async throws -> String {
        try await withTaskExecutorPreference(self) {
            guard self.isCurrent, let main = sqlite3_db_filename(self.handle, "main"), let wal = sqlite3_filename_wal(main) else {
                throw StoreError.database("SQLite: the database has no WAL file name")
            }
            return String(cString: wal)
        }
    }

    /// Stops the thread once the jobs queued so far have run; the
    /// connection closes on it.
    func close() { jobs.stop() }

    private func finish() {
        for statement in statements.values { sqlite3_finalize(statement) }
        statements = [:]
        sqlite3_close_v2(handle)
    }

    // MARK: On the thread

    /// An `INSERT` without `RETURNING`: the count of rows it changed, and the
    /// last row id, are the connection's own, read right after it on this thread.
    private func runInsert(_ sql: String, _ binds: [SQLValue]) throws -> Int64? {
        _ = try run(sql, binds)
        return sqlite3_changes(handle) > 0 ? sqlite3_last_insert_rowid(handle) : nil
    }

    private func run(_ sql: String, _ binds: [SQLValue]) throws -> [SQLRow] {
        let statement = try prepared(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (offset, value) in binds.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch value {
            case .null: code = sqlite3_bind_null(statement, index)
            case .integer(let number): code = sqlite3_bind_int64(statement, index, number)
            case .text(let text) where text.isEmpty:
                code = conclave_sqlite3_bind_text(statement, index, "", 0)  // a pointer even so: a null one would bind NULL
            case .text(var text):
                // The string's own UTF-8, not a copy of it (SQLite copies it).
                code = text.withUTF8 { utf8 in
                    utf8.withMemoryRebound(to: CChar.self) { conclave_sqlite3_bind_text(statement, index, $0.baseAddress, Int32($0.count)) }
                }
            case .blob(let bytes):
                // An empty blob needs a pointer too: a null one would bind NULL.
                code = bytes.withUnsafeBytes {
                    conclave_sqlite3_bind_blob(statement, index, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32($0.count))
                }
            }
            guard code == SQLITE_OK else { throw error(code) }
        }
        var rows: [SQLRow] = []
        let columns = sqlite3_column_count(statement)
        while true {
            let code = sqlite3_step(statement)
            if code == SQLITE_DONE { break }
            guard code == SQLITE_ROW else { throw error(code) }
            var values: [SQLValue] = []
            values.reserveCapacity(Int(columns))
            for column in 0..<columns {
                switch sqlite3_column_type(statement, column) {
                case SQLITE_NULL: values.append(.null)
                case SQLITE_INTEGER, SQLITE_FLOAT: values.append(.integer(sqlite3_column_int64(statement, column)))
                case SQLITE_TEXT:
                    let count = Int(sqlite3_column_bytes(statement, column))
                    let text = sqlite3_column_text(statement, column).map {
                        String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
                    }
                    values.append(.text(text ?? ""))
                default:
                    let count = Int(sqlite3_column_bytes(statement, column))
                    let bytes = sqlite3_column_blob(statement, column).map {
                        Array(UnsafeRawBufferPointer(start: $0, count: count))
                    }
                    values.append(.blob(bytes ?? []))
                }
            }
            rows.append(SQLRow(values))
        }
        return rows
    }

    /// The statement for `sql`, prepared once and kept.
    private func prepared(_ sql: String) throws -> OpaquePointer {
        let key = StatementKey(sql: sql)
        if let statement = statements[key] { return statement }
        if statements.count >= Self.statementLimit {
            for statement in statements.values { sqlite3_finalize(statement) }
            statements = [:]
        }
        var statement: OpaquePointer?
        let code = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard code == SQLITE_OK, let statement else { throw error(code) }
        statements[key] = statement
        return statement
    }

    /// A statement's text as the key of its prepared statement. Every
    /// statement runs through this lookup on the writer's thread, and its
    /// text runs to hundreds of bytes: hashing every byte of it (as
    /// `String` does) cost more than the lookup is worth (issue 14). The
    /// hash takes the length and 16 bytes spread over the text; two keys
    /// are equal only when their texts are byte for byte (as SQLite reads
    /// them).
    struct StatementKey: Hashable {
        let sql: String

        static func == (left: StatementKey, right: StatementKey) -> Bool {
            let (left, right) = (left.sql.utf8, right.sql.utf8)
            guard left.count == right.count else { return false }
            let same = left.withContiguousStorageIfAvailable { left in
                right.withContiguousStorageIfAvailable { right in
                    guard let leftStart = left.baseAddress, let rightStart = right.baseAddress else { return left.isEmpty }
                    return memcmp(leftStart, rightStart, left.count) == 0
                }
            }
            return (same ?? nil) ?? left.elementsEqual(right)
        }

        func hash(into hasher: inout Hasher) {
            let bytes = sql.utf8
            hasher.combine(bytes.count)
            guard !bytes.isEmpty else { return }
            for step in 0..<16 { hasher.combine(bytes[bytes.index(bytes.startIndex, offsetBy: step * (bytes.count - 1) / 15)]) }
        }
    }

    /// A typed error with SQLite's own words (never a bound value).
    private func error(_ code: Int32) -> StoreError {
        // SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY; a foreign key or NOT NULL is not a conflict.
        if code == SQLITE_CONSTRAINT | (8 << 8) || code == SQLITE_CONSTRAINT | (6 << 8) { return .conflict("unique constraint") }
        return .database("SQLite: \(String(cString: sqlite3_errstr(code)))")
    }
}

/// The jobs waiting for an ``SQLiteLink``'s thread.
final class SQLiteJobQueue: Sendable {
    private struct State {
        var jobs: [UnownedJob] = []
        var stopped = false
    }

    private let state = Mutex(State())
    private let condition = NSCondition()

    /// Queues a job; false once stopped (the job is not queued).
    func append(_ job: UnownedJob) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let queued = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            state.jobs.append(job)
            return true
        }
        if queued { condition.signal() }
        return queued
    }

    var isStopped: Bool { state.withLock { $0.stopped } }

    func stop() {
        condition.lock()
        state.withLock { $0.stopped = true }
        condition.signal()
        condition.unlock()
    }

    /// Takes every queued job, and tells whether the queue stopped.
    private func take() -> (jobs: [UnownedJob], stop: Bool) {
        state.withLock { state in
            defer { state.jobs.removeAll(keepingCapacity: true) }
            return (state.jobs, state.stopped)
        }
    }

    /// Runs jobs as they come, until stopped and empty.
    func run(_ execute: (UnownedJob) -> Void) {
        while true {
            condition.lock()
            var next = take()
            while next.jobs.isEmpty, !next.stop {
                condition.wait()
                next = take()
            }
            condition.unlock()
            for job in next.jobs { execute(job) }
            if next.stop, next.jobs.isEmpty { return }
        }
    }
}
