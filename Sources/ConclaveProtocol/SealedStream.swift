import Crypto
import Foundation

/// A byte stream sealed chunk by chunk, so that it never sits whole in
/// memory: the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár,
/// "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance",
/// CRYPTO 2015) over ChaCha20-Poly1305. The plaintext is cut into chunks of
/// `chunkSize` bytes, the last one holding 1 to `chunkSize` bytes (0 only
/// when the whole stream is empty), and chunk `i` is
///
///     ChaCha20-Poly1305(key, nonce = 0x00000000 ‖ i (UInt64, big-endian),
///                       aad = header ‖ final (1 byte: 1 on the last chunk, else 0))
///
/// written as its ciphertext and 16-byte tag: every chunk but the last is
/// exactly `chunkSize + 16` bytes. The index in the nonce catches reordered
/// chunks, the final flag a stream cut at a chunk boundary, the header (a
/// format's magic and parameters) a chunk moved to another format; the key
/// must never seal two streams (a fresh random key per file, or one derived
/// with a fresh salt). Backups (`conclave server backup`) and encrypted
/// files use it; the formats are in docs/operations.md and docs/client.md.
public enum SealedStream {
    public static let tagSize = 16

    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// The stream ends before its final chunk.
        case truncated
        /// A chunk does not open: a wrong key, or changed, reordered or foreign bytes.
        case damaged
        /// Bytes follow the final chunk.
        case trailingData

        public var description: String {
            switch self {
            case .truncated: "the stream ends before its last chunk (truncated)"
            case .damaged: "a chunk does not decrypt: the key is wrong, or the bytes were changed or reordered"
            case .trailingData: "bytes follow the stream's last chunk"
            }
        }
    }

    static func nonce(_ index: UInt64) throws -> ChaChaPoly.Nonce {
        try ChaChaPoly.Nonce(data: [0, 0, 0, 0] + withUnsafeBytes(of: index.bigEndian) { Array($0) })
    }

    /// Seals what is appended and hands the sealed chunks to `output`.
    public final class Writer {
        private let key: SymmetricKey
        private let header: [UInt8]
        private let chunkSize: Int
        private let output: ([UInt8]) throws -> Void
        private var buffer: [UInt8] = []
        private var index: UInt64 = 0
        private var finished = false

        public init(key: SymmetricKey, header: [UInt8], chunkSize: Int, output: @escaping ([UInt8]) throws -> Void) {
            precondition(chunkSize > 0, "a chunk holds at least one byte")
            self.key = key
            self.header = header
            self.chunkSize = chunkSize
            self.output = output
        }

        public func append(_ bytes: some Collection<UInt8>) throws {
            precondition(!finished, "append after finish")
            buffer.append(contentsOf: bytes)
            var start = 0
            // A full chunk is sealed only once more follows it: the last chunk must carry the final flag.
            while buffer.count - start > chunkSize {
                try seal(buffer[start..<(start + chunkSize)], final: false)
                start += chunkSize
            }
            if start > 0 { buffer.removeFirst(start) }
        }

        /// Seals the rest as the final chunk.
        public func finish() throws {
            precondition(!finished, "finish twice")
            finished = true
            try seal(buffer[...], final: true)
            buffer = []
        }

        private func seal(_ plaintext: ArraySlice<UInt8>, final: Bool) throws {
            let box = try ChaChaPoly.seal(
                plaintext, using: key, nonce: try SealedStream.nonce(index), authenticating: header + [final ? 1 : 0])
            try output(Array(box.ciphertext) + Array(box.tag))
            index += 1
        }
    }

    /// Opens a sealed stream; `input(n)` returns the next `n` bytes, fewer
    /// only at the end of the input.
    public final class Reader {
        private let key: SymmetricKey
        private let header: [UInt8]
        private let chunkSize: Int
        private let input: (Int) throws -> [UInt8]
        private var buffer: [UInt8] = []
        private var offset = 0
        private var index: UInt64 = 0
        private var ended = false

        public init(key: SymmetricKey, header: [UInt8], chunkSize: Int, input: @escaping (Int) throws -> [UInt8]) {
            precondition(chunkSize > 0, "a chunk holds at least one byte")
            self.key = key
            self.header = header
            self.chunkSize = chunkSize
            self.input = input
        }

        /// The next `count` bytes of plaintext; throws ``Failure/truncated``
        /// when the stream ends first.
        public func read(_ count: Int) throws -> [UInt8] {
            while buffer.count - offset < count {
                guard !ended else { throw Failure.truncated }
                buffer = Array(buffer[offset...]) + (try open())
                offset = 0
            }
            defer { offset += count }
            return Array(buffer[offset..<(offset + count)])
        }

        /// The rest of the plaintext, up to `limit` bytes at a time; empty
        /// once the final chunk has been read.
        public func next(upTo limit: Int) throws -> [UInt8] {
            if offset == buffer.count {
                guard !ended else { return [] }
                buffer = try open()
                offset = 0
            }
            let count = min(limit, buffer.count - offset)
            defer { offset += count }
            return Array(buffer[offset..<(offset + count)])
        }

        /// Checks that the stream ended exactly with its final chunk, all of it read.
        public func finish() throws {
            while !ended {
                guard offset == buffer.count else { throw Failure.trailingData }
                buffer = try open()
                offset = 0
            }
            guard offset == buffer.count else { throw Failure.trailingData }
            guard try input(1).isEmpty else { throw Failure.trailingData }
        }

        private func open() throws -> [UInt8] {
            let sealed = try input(chunkSize + SealedStream.tagSize)
            let (plaintext, final) = try SealedStream.openChunk(sealed[...], index: index, key: key, header: header, chunkSize: chunkSize)
            index += 1
            ended = final
            return plaintext
        }
    }

    /// Opens a sealed stream as its bytes arrive (a download): each
    /// ``feed(_:)`` returns the plaintext of the chunks it completed.
    public final class Opener {
        private let key: SymmetricKey
        private let header: [UInt8]
        private let chunkSize: Int
        private var buffer: [UInt8] = []
        private var index: UInt64 = 0
        private var ended = false

        public init(key: SymmetricKey, header: [UInt8], chunkSize: Int) {
            precondition(chunkSize > 0, "a chunk holds at least one byte")
            self.key = key
            self.header = header
            self.chunkSize = chunkSize
        }

        public func feed(_ bytes: some Collection<UInt8>) throws -> [UInt8] {
            buffer.append(contentsOf: bytes)
            let sealedChunk = chunkSize + SealedStream.tagSize
            var start = 0
            var plaintext: [UInt8] = []
            while buffer.count - start >= sealedChunk {
                guard !ended else { throw Failure.trailingData }
                let chunk = try SealedStream.openChunk(
                    buffer[start..<(start + sealedChunk)], index: index, key: key, header: header, chunkSize: chunkSize)
                index += 1
                ended = chunk.final
                plaintext.append(contentsOf: chunk.plaintext)
                start += sealedChunk
            }
            if start > 0 { buffer.removeFirst(start) }
            if ended, !buffer.isEmpty { throw Failure.trailingData }
            return plaintext
        }

        /// The input ended: returns the last chunk's plaintext, or throws
        /// when the stream is cut short.
        public func finish() throws -> [UInt8] {
            if ended {
                guard buffer.isEmpty else { throw Failure.trailingData }
                return []
            }
            let chunk = try SealedStream.openChunk(buffer[...], index: index, key: key, header: header, chunkSize: chunkSize)
            guard chunk.final else { throw Failure.truncated }
            ended = true
            buffer = []
            return chunk.plaintext
        }
    }

    /// Opens chunk `index`: a full-size chunk may be the last or not (its
    /// tag tells); a shorter one can only be the last.
    static func openChunk(_ sealed: ArraySlice<UInt8>, index: UInt64, key: SymmetricKey, header: [UInt8], chunkSize: Int) throws -> (
        plaintext: [UInt8], final: Bool
    ) {
        guard sealed.count >= SealedStream.tagSize else { throw Failure.truncated }
        let box = try ChaChaPoly.SealedBox(
            nonce: try SealedStream.nonce(index), ciphertext: sealed.prefix(sealed.count - SealedStream.tagSize),
            tag: sealed.suffix(SealedStream.tagSize))
        for final in sealed.count == chunkSize + SealedStream.tagSize ? [false, true] : [true] {
            if let plaintext = try? ChaChaPoly.open(box, using: key, authenticating: header + [final ? 1 : 0]) {
                return (Array(plaintext), final)
            }
        }
        throw Failure.damaged
    }
}
