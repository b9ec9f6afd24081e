import ConclaveProtocol
import Crypto
import Foundation
import Testing

/// The chunked AEAD stream under backups and encrypted files: what goes in
/// comes out, and every way of cutting, moving or changing the bytes fails.
@Suite struct SealedStreamTests {
    let key = SymmetricKey(size: .bits256)
    let header = Array("test-header".utf8)

    func seal(_ plaintext: [UInt8], chunkSize: Int, key: SymmetricKey? = nil) throws -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        let writer = SealedStream.Writer(key: key ?? self.key, header: header, chunkSize: chunkSize) { chunks.append($0) }
        // Appended in uneven pieces: chunking does not depend on how the bytes arrive.
        var rest = plaintext[...]
        var step = 1
        while !rest.isEmpty {
            try writer.append(rest.prefix(step))
            rest = rest.dropFirst(step)
            step = step * 2 + 1
        }
        try writer.finish()
        return chunks
    }

    func open(_ sealed: [UInt8], chunkSize: Int, header: [UInt8]? = nil) throws -> [UInt8] {
        var position = 0
        let reader = SealedStream.Reader(key: key, header: header ?? self.header, chunkSize: chunkSize) { count in
            let end = min(sealed.count, position + count)
            defer { position = end }
            return Array(sealed[position..<end])
        }
        var plaintext: [UInt8] = []
        while true {
            let piece = try reader.next(upTo: 7)
            if piece.isEmpty { break }
            plaintext += piece
        }
        try reader.finish()
        return plaintext
    }

    @Test(
        "Round trips at every size around the chunk boundaries, and chunk sizes on the wire",
        arguments: [0, 1, 15, 16, 17, 31, 32, 33, 100])
    func roundTrip(_ size: Int) throws {
        let plaintext = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let chunks = try seal(plaintext, chunkSize: 16)
        #expect(chunks.count == max(1, (size + 15) / 16))
        #expect(chunks.dropLast().allSatisfy { $0.count == 16 + SealedStream.tagSize })
        #expect(chunks.last?.count == (size == 0 ? 0 : (size - 1) % 16 + 1) + SealedStream.tagSize)
        #expect(try open(Array(chunks.joined()), chunkSize: 16) == plaintext)
    }

    @Test("Truncation, reordering, a flipped bit, extra bytes, a wrong key or header: each refused")
    func tampering() throws {
        let plaintext = (0..<50).map { UInt8($0) }
        let chunks = try seal(plaintext, chunkSize: 16)  // 16 + 16 + 16 + 2 bytes
        #expect(chunks.count == 4)
        let whole = Array(chunks.joined())
        // Cut at a chunk boundary: the last chunk left is not marked final.
        #expect(throws: SealedStream.Failure.truncated) { try open(Array(chunks.prefix(3).joined()), chunkSize: 16) }
        #expect(throws: SealedStream.Failure.truncated) { try open([], chunkSize: 16) }
        // Cut inside a chunk.
        #expect(throws: SealedStream.Failure.damaged) { try open(Array(whole.dropLast(1)), chunkSize: 16) }
        // Two chunks swapped.
        #expect(throws: SealedStream.Failure.damaged) {
            try open(Array([chunks[1], chunks[0], chunks[2], chunks[3]].joined()), chunkSize: 16)
        }
        // One bit.
        for position in [0, 20, 40, whole.count - 1] {
            var flipped = whole
            flipped[position] ^= 0x01
            #expect(throws: SealedStream.Failure.damaged) { try open(flipped, chunkSize: 16) }
        }
        // Bytes after the final chunk: inside its read they spoil it; after a full final chunk they are left over.
        #expect(throws: SealedStream.Failure.damaged) { try open(whole + [0], chunkSize: 16) }
        let full = Array(try seal(Array(plaintext.prefix(48)), chunkSize: 16).joined())
        #expect(try open(full, chunkSize: 16) == Array(plaintext.prefix(48)))
        #expect(throws: SealedStream.Failure.trailingData) { try open(full + [0], chunkSize: 16) }
        #expect(throws: SealedStream.Failure.trailingData) { try open(full + chunks[0], chunkSize: 16) }
        // Another key, another header (a chunk moved to another format).
        let other = try seal(plaintext, chunkSize: 16, key: SymmetricKey(size: .bits256))
        #expect(throws: SealedStream.Failure.damaged) { try open(Array(other.joined()), chunkSize: 16) }
        #expect(throws: SealedStream.Failure.damaged) { try open(whole, chunkSize: 16, header: Array("other".utf8)) }
        // A final chunk padded to full size is not taken for a middle one.
        #expect(throws: (any Error).self) {
            try open(Array(chunks.prefix(3).joined()) + chunks[3] + [UInt8](repeating: 0, count: 14), chunkSize: 16)
        }
    }
}

/// Encrypted files: the format of issue 16's file sharing (upload and
/// download are not built yet).
@Suite struct EncryptedFileTests {
    func seal(_ plaintext: [UInt8]) throws -> (EncryptedFile.Sealed, [UInt8]) {
        var position = 0
        var sealed: [UInt8] = []
        let result = try EncryptedFile.seal(
            read: { count in
                let end = min(plaintext.count, position + count)
                defer { position = end }
                return Array(plaintext[position..<end])
            }, write: { sealed += $0 })
        return (result, sealed)
    }

    func open(_ sealed: [UInt8], _ info: EncryptedFile.Sealed, size: UInt64? = nil, sha256: [UInt8]? = nil) throws -> [UInt8] {
        var position = 0
        var plaintext: [UInt8] = []
        try EncryptedFile.open(
            key: info.key, size: size ?? info.size, sha256: sha256 ?? info.sha256,
            read: { count in
                let end = min(sealed.count, position + count)
                defer { position = end }
                return Array(sealed[position..<end])
            }, write: { plaintext += $0 })
        return plaintext
    }

    @Test(
        "Sealed with a fresh key; the header, sizes and hash as documented; opened back",
        arguments: [0, 1, 65_535, 65_536, 65_537, 200_000])
    func roundTrip(_ size: Int) throws {
        let plaintext = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 131) }
        let (info, sealed) = try seal(plaintext)
        #expect(info.key.count == 32)
        #expect(info.size == UInt64(size))
        #expect(info.sha256 == Array(SHA256.hash(data: plaintext)))
        #expect(info.sealedSize == UInt64(sealed.count))
        #expect(EncryptedFile.sealedSize(of: UInt64(size)) == UInt64(sealed.count))
        #expect(Array(sealed.prefix(20)) == Array("CONCLAVE-FILE-1\n".utf8) + [0, 1, 0, 0])
        #expect(try open(sealed, info) == plaintext)
        // Two seals of one file share nothing: a new key each time.
        #expect(try seal(plaintext).0.key != info.key)
    }

    @Test("A file whose message states another size or hash, a wrong key or a foreign header is refused")
    func refusals() throws {
        let plaintext = Array("the quarterly figures".utf8)
        let (info, sealed) = try seal(plaintext)
        #expect(throws: EncryptedFile.Failure.sizeMismatch) { try open(sealed, info, size: info.size - 1) }
        #expect(throws: EncryptedFile.Failure.sizeMismatch) { try open(sealed, info, size: info.size + 1) }
        #expect(throws: EncryptedFile.Failure.hashMismatch) { try open(sealed, info, sha256: [UInt8](repeating: 0, count: 32)) }
        var wrongKey = info.key
        wrongKey[0] ^= 1
        let wrong = EncryptedFile.Sealed(key: wrongKey, size: info.size, sha256: info.sha256, sealedSize: info.sealedSize)
        #expect(throws: SealedStream.Failure.damaged) { try open(sealed, wrong) }
        var foreign = sealed
        foreign[0] ^= 1
        #expect(throws: EncryptedFile.Failure.notAnEncryptedFile) { try open(foreign, info) }
    }
}
