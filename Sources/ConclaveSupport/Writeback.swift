import CConclaveSystem

/// Early writeback for large file transfers: after writing a piece of a
/// file, ``start(_:offset:count:)`` has the kernel begin writing those pages
/// to disk and returns at once (Linux's `sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE`; nothing elsewhere). The disk then works while
/// the next bytes arrive, and the `fsync` that makes the file durable finds
/// little left to do; the pages stay cached. It is no durability barrier.
public enum Writeback {
    public static func start(_ descriptor: Int32, offset: Int64, count: Int) {
        _ = conclave_start_writeback(descriptor, offset, Int64(count))
    }
}
