import CSQLite
import Foundation

/// A consistent copy of a live SQLite database, through SQLite's online
/// backup API: it reads one snapshot (a read transaction in WAL mode), so a
/// server may go on writing meanwhile.
public enum SQLiteBackup {
    /// Copies the database at `source` into a new file at `destination`.
    public static func copy(from source: String, to destination: String) throws(StoreError) {
        var from: OpaquePointer?
        var to: OpaquePointer?
        defer {
            sqlite3_close_v2(from)
            sqlite3_close_v2(to)
        }
        guard sqlite3_open_v2(source, &from, SQLITE_OPEN_READONLY, nil) == SQLITE_OK, let from else {
            throw StoreError.database("cannot open \(source): \(from.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory")")
        }
        sqlite3_busy_timeout(from, 10_000)
        guard sqlite3_open_v2(destination, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nil) == SQLITE_OK, let to else {
            throw StoreError.database("cannot create \(destination)")
        }
        guard let backup = sqlite3_backup_init(to, "main", from, "main") else {
            throw StoreError.database("cannot start the backup: \(String(cString: sqlite3_errmsg(to)))")
        }
        let stepped = sqlite3_backup_step(backup, -1)
        let finished = sqlite3_backup_finish(backup)
        guard stepped == SQLITE_DONE, finished == SQLITE_OK else {
            throw StoreError.database("the backup did not complete: \(String(cString: sqlite3_errstr(stepped)))")
        }
        // The copy stands alone: one file, no write-ahead log beside it.
        guard sqlite3_exec(to, "PRAGMA journal_mode=DELETE", nil, nil, nil) == SQLITE_OK else {
            throw StoreError.database("cannot finish the copy: \(String(cString: sqlite3_errmsg(to)))")
        }
    }

    /// Whether the database at `path` passes SQLite's integrity check.
    public static func isIntact(_ path: String) -> Bool {
        var handle: OpaquePointer?
        defer { sqlite3_close_v2(handle) }
        guard sqlite3_open_v2(path, &handle, SQLITE_OPEN_READONLY, nil) == SQLITE_OK, let handle else { return false }
        var statement: OpaquePointer?
        defer { sqlite3_finalize(statement) }
        guard sqlite3_prepare_v2(handle, "PRAGMA integrity_check", -1, &statement, nil) == SQLITE_OK,
            sqlite3_step(statement) == SQLITE_ROW, let text = sqlite3_column_text(statement, 0)
        else { return false }
        return String(cString: text) == "ok"
    }
}
