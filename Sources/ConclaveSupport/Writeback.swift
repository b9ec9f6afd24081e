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

    /// Has the C allocator give buffers of `bytes` or more back to the
    /// system as soon as they are freed (glibc; nothing elsewhere). A
    /// process that moves large files calls it once at start: glibc's
    /// moving threshold otherwise keeps freed pieces in per-thread arenas,
    /// and the process grows with every arena.
    public static func returnLargeBuffers(atLeast bytes: Int) {
        _ = conclave_set_mmap_threshold(Int32(bytes))
    }
}
