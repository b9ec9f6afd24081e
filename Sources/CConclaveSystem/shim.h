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

/// Sets one of the C allocator's options (glibc's mallopt: M_TRIM_THRESHOLD is -1, M_MMAP_THRESHOLD -3; setting
/// either stops glibc from moving both); elsewhere nothing.
static inline int conclave_set_malloc_option(int option, int value) {
#if defined(__linux__)
    return mallopt(option, value);
#else
    (void)option;
    (void)value;
    return 0;
#endif
}

#endif
