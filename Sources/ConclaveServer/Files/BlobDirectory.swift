import ConclaveProtocol
import ConclaveSupport
import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where shared files' sealed bytes live: one file per ``FileID`` in one
/// directory (the data directory's `blobs/` by default; for several server
/// processes on one PostgreSQL database, a directory they share). A name is
/// the random id, never the file's own name, which the server never learns.
/// File I/O runs on NIO's thread pool, never on the cooperative threads.
struct BlobDirectory: Sendable {
    let path: String
    /// Bytes written or read per system call.
    static let ioSize = 1 << 20

    init(path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    func location(of id: FileID) -> String { path + "/" + id.value }

    /// Writes `body` at `offset`, at most `limit` bytes, and syncs them to
    /// disk. Returns how many bytes were written; throws `tooMany` as soon
    /// as the body holds more than `limit` (nothing counts then).
    func write<Body: AsyncSequence>(_ id: FileID, at offset: UInt64, limit: UInt64, body: Body) async throws -> UInt64
    where Body.Element == ByteBuffer {
        let location = location(of: id)
        let descriptor = try await Self.io { () throws(BlobFailure) -> Int32 in
            let fd = open(location, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw BlobFailure.io("open", errno) }
            return fd
        }
        defer { close(descriptor) }
        var written: UInt64 = 0
        var pending = ByteBuffer()
        func flush() async throws {
            guard pending.readableBytes > 0 else { return }
            let chunk = pending
            let position = offset + written
            try await Self.io { () throws(BlobFailure) in try Self.writeAll(descriptor, chunk, at: position) }
            written += UInt64(chunk.readableBytes)
            pending.clear()
        }
        for try await var piece in body {
            guard written + UInt64(pending.readableBytes) + UInt64(piece.readableBytes) <= limit else { throw BlobFailure.tooMany }
            pending.writeBuffer(&piece)
            if pending.readableBytes >= Self.ioSize { try await flush() }
        }
        try await flush()
        try await Self.io { () throws(BlobFailure) in
            guard fsync(descriptor) == 0 else { throw BlobFailure.io("fsync", errno) }
        }
        return written
    }

    /// Reads `range` of a file, `ioSize` bytes at a time, into `output`.
    func read(_ id: FileID, range: Range<UInt64>, into output: (ByteBuffer) async throws -> Void) async throws {
        let location = location(of: id)
        let descriptor = try await Self.io { () throws(BlobFailure) -> Int32 in
            let fd = open(location, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw BlobFailure.io("open", errno) }
            return fd
        }
        defer { close(descriptor) }
        var position = range.lowerBound
        while position < range.upperBound {
            let count = Int(min(UInt64(Self.ioSize), range.upperBound - position))
            let start = position
            let chunk = try await Self.io { () throws(BlobFailure) -> ByteBuffer in
                var buffer = ByteBufferAllocator().buffer(capacity: count)
                let got = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer in
                    pread(descriptor, pointer.baseAddress, count, off_t(start))
                }
                guard got > 0 else { throw got == 0 ? BlobFailure.shortFile : BlobFailure.io("read", errno) }
                return buffer
            }
            position += UInt64(chunk.readableBytes)
            try await output(chunk)
        }
    }

    /// Deletes a file's bytes (absent ones are fine).
    func delete(_ id: FileID) {
        unlink(location(of: id))
    }

    /// The ids of the files in the directory.
    func storedIDs() -> [FileID] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).compactMap(FileID.init)
    }

    /// Writes all of `buffer` at `offset`, then has the kernel start writing
    /// it to disk (``Writeback``), so that the fsync at the end of a request
    /// finds little left to do: the disk works while the next bytes arrive.
    private static func writeAll(_ descriptor: Int32, _ buffer: ByteBuffer, at offset: UInt64) throws(BlobFailure) {
        defer { Writeback.start(descriptor, offset: Int64(offset), count: buffer.readableBytes) }
        var done = 0
        let total = buffer.readableBytes
        while done < total {
            let result = buffer.withUnsafeReadableBytes { bytes in
                guard let base = bytes.baseAddress else { return 0 }
                return pwrite(descriptor, base + done, total - done, off_t(offset) + off_t(done))
            }
            guard result > 0 else {
                if result < 0, errno == EINTR { continue }
                throw BlobFailure.io("write", errno)
            }
            done += result
        }
    }

    private static func io<T: Sendable>(_ body: @escaping @Sendable () throws(BlobFailure) -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive { try body() }
    }
}

enum BlobFailure: Error, CustomStringConvertible {
    case io(String, Int32)
    case tooMany
    case shortFile

    var description: String {
        switch self {
        case .io(let call, let code): "\(call) failed: \(String(cString: strerror(code)))"
        case .tooMany: "the body holds more bytes than the upload has left"
        case .shortFile: "a stored file is shorter than its row says"
        }
    }
}
