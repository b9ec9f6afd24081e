import CConclaveSystem

/// Settings of the C allocator (glibc; nothing elsewhere), made once at a
/// process's start. glibc's thresholds start low and move with the largest
/// mapped buffer freed; setting either fixes both.
public enum MemoryAllocator {
    /// glibc's `M_TRIM_THRESHOLD` and `M_MMAP_THRESHOLD` (`<malloc.h>`).
    private static let trimThreshold: Int32 = -1
    private static let mmapThreshold: Int32 = -3

    /// For a client moving large files: buffers of a MiB or more go back to
    /// the system as soon as they are freed. glibc's moving threshold
    /// otherwise keeps freed pieces in per-thread arenas, and the process
    /// grows with every arena.
    public static func configureForClient() {
        _ = conclave_set_malloc_option(mmapThreshold, 1 << 20)
    }

    /// For the server: buffers under 4 MiB come from the heaps, and each
    /// heap keeps up to 8 MiB of freed memory at its top, where glibc would
    /// settle after a large buffer. With the starting thresholds (128 KiB),
    /// the buffers of a room's frames, freed together once written, were
    /// given back to the system and their pages faulted in again for the
    /// next ones: 5 % of the server's time in a room-50 run.
    public static func configureForServer() {
        _ = conclave_set_malloc_option(mmapThreshold, 4 << 20)
        _ = conclave_set_malloc_option(trimThreshold, 8 << 20)
    }
}
