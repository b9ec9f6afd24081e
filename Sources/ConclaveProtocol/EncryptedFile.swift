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

    /// Seals a file as its bytes come: ``append(_:)`` them, ``take()``
    /// the sealed bytes produced so far (the header first), then
    /// ``finish()``. The key is fresh and random, for this file only.
    public final class Sealer {
        private final class Output {
            var bytes = EncryptedFile.header
            var count = UInt64(EncryptedFile.header.count)
        }

        private let key = SymmetricKey(size: .bits256)
        private let output = Output()
        private let writer: SealedStream.Writer
        private var hash = SHA256()
        private var size: UInt64 = 0

        public init() {
            let output = output
            writer = SealedStream.Writer(key: key, header: EncryptedFile.header, chunkSize: EncryptedFile.chunkSize) { bytes in
                output.bytes.append(contentsOf: bytes)
                output.count += UInt64(bytes.count)
            }
        }

        public func append(_ bytes: some Collection<UInt8>) throws {
            if bytes.withContiguousStorageIfAvailable({ hash.update(bufferPointer: UnsafeRawBufferPointer($0)) }) == nil {
                hash.update(data: Array(bytes))
            }
            size += UInt64(bytes.count)
            try writer.append(bytes)
        }

        /// The sealed bytes produced since the last call.
        public func take() -> [UInt8] {
            defer { output.bytes = [] }
            return output.bytes
        }

        /// Seals the last chunk (``take()`` it after) and says what the
        /// message about the file carries.
        public func finish() throws -> Sealed {
            try writer.finish()
            return Sealed(key: key.withUnsafeBytes { Array($0) }, size: size, sha256: Array(hash.finalize()), sealedSize: output.count)
        }
    }

    /// Opens a sealed file as its bytes come, checking at the end its size
    /// and hash against what its message states. Bytes handed out before
    /// ``finish()`` returns are authentic chunks of a file sealed with this
    /// key, but the file is whole and the one the message names only once
    /// it returns: write them to a temporary place until then.
    public final class Opener {
        private let stream: SealedStream.Opener
        private let size: UInt64
        private let sha256: [UInt8]
        private var header: [UInt8] = []
        private var hash = SHA256()
        private var opened: UInt64 = 0

        public init(key: [UInt8], size: UInt64, sha256: [UInt8]) throws {
            guard key.count == 32 else { throw Failure.wrongKeySize }
            self.stream = SealedStream.Opener(
                key: SymmetricKey(data: key), header: EncryptedFile.header, chunkSize: EncryptedFile.chunkSize)
            self.size = size
            self.sha256 = sha256
        }

        public func feed(_ bytes: some Collection<UInt8>) throws -> [UInt8] {
            var rest = bytes[...]
            if header.count < EncryptedFile.header.count {
                let wanted = EncryptedFile.header.count - header.count
                header.append(contentsOf: rest.prefix(wanted))
                rest = rest.dropFirst(wanted)
                guard header == Array(EncryptedFile.header.prefix(header.count)) else { throw Failure.notAnEncryptedFile }
            }
            return try counted(try stream.feed(rest))
        }

        public func finish() throws -> [UInt8] {
            guard header == EncryptedFile.header else { throw Failure.notAnEncryptedFile }
            let last = try counted(try stream.finish())
            guard opened == size else { throw Failure.sizeMismatch }
            guard Array(hash.finalize()) == sha256 else { throw Failure.hashMismatch }
            return last
        }

        private func counted(_ plaintext: [UInt8]) throws -> [UInt8] {
            opened += UInt64(plaintext.count)
            guard opened <= size else { throw Failure.sizeMismatch }
            hash.update(data: plaintext)
            return plaintext
        }
    }

    /// Encrypts what `read(n)` returns (fewer than `n` bytes only at the
    /// end) into `write`, under a fresh random key.
    public static func seal(read: (Int) throws -> [UInt8], write: ([UInt8]) throws -> Void) throws -> Sealed {
        let sealer = Sealer()
        while true {
            let piece = try read(chunkSize)
            if piece.isEmpty { break }
            try sealer.append(piece)
            try write(sealer.take())
        }
        let sealed = try sealer.finish()
        try write(sealer.take())
        return sealed
    }

    /// Decrypts a sealed file into `write`, checking its size and hash
    /// against what its message states. `write` may have received bytes
    /// when this throws: the caller discards them (writes to a temporary
    /// file, renamed only on success).
    public static func open(
        key: [UInt8], size: UInt64, sha256: [UInt8], read: (Int) throws -> [UInt8], write: ([UInt8]) throws -> Void
    ) throws {
        let opener = try Opener(key: key, size: size, sha256: sha256)
        while true {
            let piece = try read(chunkSize)
            if piece.isEmpty { break }
            let plaintext = try opener.feed(piece)
            if !plaintext.isEmpty { try write(plaintext) }
        }
        let last = try opener.finish()
        if !last.isEmpty { try write(last) }
    }
}
