// The system's SQLite 3 (Debian: libsqlite3-dev), for the server's own
// driver (ConclaveStorage/SQLiteDatabase.swift). SQLITE_TRANSIENT is a cast
// Swift cannot import; these wrappers bind copies of text and blobs.
#include <sqlite3.h>

static inline int conclave_sqlite3_bind_text(sqlite3_stmt *statement, int index, const char *text, int bytes) {
    return sqlite3_bind_text(statement, index, text, bytes, SQLITE_TRANSIENT);
}

static inline int conclave_sqlite3_bind_blob(sqlite3_stmt *statement, int index, const void *data, int bytes) {
    return sqlite3_bind_blob(statement, index, data, bytes, SQLITE_TRANSIENT);
}
