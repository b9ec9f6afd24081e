import Crypto
import Foundation

/// A file as Conclave shares it: encrypted on the sender's device with a
/// fresh random key, in 64 KiB chunks, so that a file of any size is never
/// whole in memory (docs/client.md#encrypted-files):
///
///     header  "CONCLAVE-FILE-1\n" (16 bytes) ‖ chunk size (UInt32, big-endian: 65536)
///     then    a ``SealedStream`` of the file's bytes under the file key, with the header as its header
///
/// The server stores these bytes and nothing else about the file: the key,
/// the name, the media type and the SHA-256 of the plaintext travel inside
/// an MLS application message, which the server cannot read. A receiver
/// checks the size and the hash after decrypting.
///
/// Status: the format and its tests. Upload, download, policy and the CLI
/// (issue "Encrypted file sharing, gated by policy") are not built yet.
public enum EncryptedFile {
    public static let magic = Array("CONCLAVE-FILE-1\n".utf8)
    public static let chunkSize = 64 * 1024
    public static let header: [UInt8] = magic + withUnsafeBytes(of: UInt32(chunkSize).bigEndian) { Array($0) }

    /// What the sender puts in its message about a sealed file.
    public struct Sealed: Sendable, Equatable {
        /// The file key: 32 random bytes, for this file only.
        public let key: [UInt8]
        /// The plaintext's size and SHA-256.
        public let size: UInt64
        public let sha256: [UInt8]
        /// The size of the sealed bytes (header, chunks and tags).
        public let sealedSize: UInt64

        public init(key: [UInt8], size: UInt64, sha256: [UInt8], sealedSize: UInt64) {
            self.key = key
            self.size = size
            self.sha256 = sha256
            self.sealedSize = sealedSize
        }
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case notAnEncryptedFile
        case wrongKeySize
        case sizeMismatch
        case hashMismatch

        public var description: String {
            switch self {
            case .notAnEncryptedFile: "not a Conclave encrypted file (its header is wrong)"
            case .wrongKeySize: "a file key is 32 bytes"
            case .sizeMismatch: "the decrypted file is not the size its message states"
            case .hashMismatch: "the decrypted file does not have the SHA-256 its message states"
            }
        }
    }

    /// The size of a file of `size` bytes once sealed.
    public static func sealedSize(of size: UInt64) -> UInt64 {
        let chunks = max(1, (size + UInt64(chunkSize) - 1) / UInt64(chunkSize))  // an empty file is one empty chunk
        return UInt64(header.count) + size + chunks * UInt64(SealedStream.tagSize)
    }

    /// Encrypts what `read(n)` returns (fewer than `n` bytes only at the
    /// end) into `write`, under a fresh random key.
    public static func seal(read: (Int) throws -> [UInt8], write: @escaping ([UInt8]) throws -> Void) throws -> Sealed {
        let key = SymmetricKey(size: .bits256)
        var sealedSize = UInt64(header.count)
        try write(header)
        let writer = SealedStream.Writer(key: key, header: header, chunkSize: chunkSize) { bytes in
            sealedSize += UInt64(bytes.count)
            try write(bytes)
        }
        var hash = SHA256()
        var size: UInt64 = 0
        while true {
            let piece = try read(chunkSize)
            if piece.isEmpty { break }
            hash.update(data: piece)
            size += UInt64(piece.count)
            try writer.append(piece)
        }
        try writer.finish()
        return Sealed(
            key: key.withUnsafeBytes { Array($0) }, size: size, sha256: Array(hash.finalize()), sealedSize: sealedSize)
    }

    /// Decrypts a sealed file into `write`, checking its size and hash
    /// against what its message states. `write` may have received bytes
    /// when this throws: the caller discards them (writes to a temporary
    /// file, renamed only on success).
    public static func open(
        key: [UInt8], size: UInt64, sha256: [UInt8], read: @escaping (Int) throws -> [UInt8], write: ([UInt8]) throws -> Void
    ) throws {
        guard key.count == 32 else { throw Failure.wrongKeySize }
        guard try read(header.count) == header else { throw Failure.notAnEncryptedFile }
        let reader = SealedStream.Reader(key: SymmetricKey(data: key), header: header, chunkSize: chunkSize, input: read)
        var hash = SHA256()
        var written: UInt64 = 0
        while true {
            let piece = try reader.next(upTo: chunkSize)
            if piece.isEmpty { break }
            written += UInt64(piece.count)
            guard written <= size else { throw Failure.sizeMismatch }
            hash.update(data: piece)
            try write(piece)
        }
        try reader.finish()
        guard written == size else { throw Failure.sizeMismatch }
        guard Array(hash.finalize()) == sha256 else { throw Failure.hashMismatch }
    }
}
