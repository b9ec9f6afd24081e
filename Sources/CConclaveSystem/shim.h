// System calls the Swift Glibc module does not import.
#ifndef CONCLAVE_CSYSTEM_SHIM_H
#define CONCLAVE_CSYSTEM_SHIM_H

#if defined(__linux__)
// From <fcntl.h> with _GNU_SOURCE (Linux, glibc 2.6+); declared here because the Swift Glibc module is built without it.
extern int sync_file_range(int fd, long long offset, long long nbytes, unsigned int flags);
#endif
#if defined(__linux__)
// From <malloc.h> (glibc; musl has it as a no-op), which the Swift Glibc module does not include.
extern int mallopt(int param, int value);
#endif

/// Starts writing a file's dirty pages in [offset, offset + count) to disk and returns at once
/// (Linux's sync_file_range with SYNC_FILE_RANGE_WRITE), so that a later fsync finds little left
/// to do while the pages stay cached; elsewhere it does nothing. It is not a durability barrier.
static inline int conclave_start_writeback(int fd, long long offset, long long count) {
#if defined(__linux__)
    return sync_file_range(fd, offset, count, 2 /* SYNC_FILE_RANGE_WRITE */);
#else
    (void)fd;
    (void)offset;
    (void)count;
    return 0;
#endif
}

/// Has the C allocator hand every allocation of at least `bytes` to the system (mmap) and give it back
/// when freed (glibc's M_MMAP_THRESHOLD, which also stops the threshold from moving); elsewhere nothing.
static inline int conclave_set_mmap_threshold(int bytes) {
#if defined(__linux__)
    return mallopt(-3 /* M_MMAP_THRESHOLD */, bytes);
#else
    (void)bytes;
    return 0;
#endif
}

/// Has the C allocator keep up to `bytes` of freed memory at the top of each heap rather than give it back to
/// the system at once (glibc's M_TRIM_THRESHOLD, which also stops the thresholds from moving); elsewhere nothing.
static inline int conclave_set_trim_threshold(int bytes) {
#if defined(__linux__)
    return mallopt(-1 /* M_TRIM_THRESHOLD */, bytes);
#else
    (void)bytes;
    return 0;
#endif
}

#endif
