import MLSCodec
import Testing

@Suite("Variable-length headers (RFC 9420 §2.1.2)")
struct VarintTests {
    @Test(
        arguments: [
            (0, [0x00]), (63, [0x3F]), (64, [0x40, 0x40]), (16383, [0x7F, 0xFF]),
            (16384, [0x80, 0x00, 0x40, 0x00]), ((1 << 30) - 1, [0xBF, 0xFF, 0xFF, 0xFF]),
        ] as [(Int, [UInt8])])
    func minimalEncodingRoundTrips(length: Int, encoded: [UInt8]) throws {
        var writer = TLSWriter()
        writer.writeLength(length)
        #expect(writer.bytes == encoded)
        var reader = TLSReader(encoded)
        #expect(try reader.readLength() == length)
        #expect(reader.isAtEnd)
    }

    @Test(arguments: [[0x40, 0x3F], [0x40, 0x00], [0x80, 0x00, 0x3F, 0xFF], [0x80, 0x00, 0x00, 0x01]] as [[UInt8]])
    func nonMinimalEncodingIsRejected(encoded: [UInt8]) {
        var reader = TLSReader(encoded)
        #expect(throws: CodecError(.nonMinimalLength, "", offset: 0)) { try reader.readLength() }
    }

    @Test func reservedPrefixIsRejected() {
        var reader = TLSReader([0xC0, 0, 0, 0, 0, 0, 0, 1])
        #expect(throws: CodecError(.lengthTooLarge, "", offset: 0)) { try reader.readLength() }
    }

    @Test func truncatedHeaderIsRejected() {
        for encoded in [[], [0x40], [0x80, 0x00, 0x40]] as [[UInt8]] {
            var reader = TLSReader(encoded)
            #expect(throws: CodecError(.truncated, "", offset: 0)) { try reader.readLength() }
        }
    }

    @Test func lengthBeyondInputIsRejectedWithoutAllocating() {
        // Claims a 1 GiB body in a 4-byte input.
        var reader = TLSReader([0xBF, 0xFF, 0xFF, 0xFF])
        #expect(throws: CodecError(.truncated, "", offset: 0)) { try reader.readOpaque() }
    }
}

@Suite("TLS presentation language (RFC 9420 §2.1)")
struct CodecTests {
    @Test func integersAreBigEndian() throws {
        var writer = TLSWriter()
        writer.write(UInt8(0x01))
        writer.write(UInt16(0x0203))
        writer.write(UInt32(0x0405_0607))
        writer.write(UInt64(0x0809_0A0B_0C0D_0E0F))
        #expect(writer.bytes == Array(1...15))
        var reader = TLSReader(writer.bytes)
        #expect(try reader.readUInt8() == 0x01)
        #expect(try reader.readUInt16() == 0x0203)
        #expect(try reader.readUInt32() == 0x0405_0607)
        #expect(try reader.readUInt64() == 0x0809_0A0B_0C0D_0E0F)
        #expect(throws: CodecError(.truncated, "", offset: 0)) { try reader.readUInt8() }
    }

    @Test func optionalPresenceMustBeZeroOrOne() throws {
        #expect(try TLSReader.decode([0x00]) == nil)
        #expect(try TLSReader.decode([0x01, 0x00, 0x07]) == 7)
        #expect(throws: CodecError(.invalidValue, "", offset: 0)) { try TLSReader.decode([0x02, 0x00, 0x07]) }
    }

    @Test func vectorElementsMustFillTheBodyExactly() throws {
        // A 3-byte body cannot hold whole uint16 elements.
        var reader = TLSReader([0x03, 0x00, 0x01, 0x00])
        #expect(throws: CodecError(.truncated, "", offset: 0)) { try reader.readVector(of: UInt16.self) }

        var exact = TLSReader([0x04, 0x00, 0x01, 0x00, 0x02])
        #expect(try exact.readVector(of: UInt16.self) == [1, 2])
    }

    @Test func nestedBodyMustBeConsumed() {
        var reader = TLSReader([0x02, 0x05, 0x06])
        #expect(throws: CodecError(.malformedVector, "", offset: 0)) {
            try reader.readVector { inner in try inner.readUInt8() }
        }
    }

    @Test func trailingBytesAreRejected() {
        #expect(throws: CodecError(.trailingBytes, "", offset: 0)) { try OpaqueBytes(tlsSerialized: [0x01, 0xAA, 0xBB]) }
    }

    @Test func errorsCompareByCodeAndNeverPrintData() {
        let error = CodecError(.truncated, "Welcome.secrets", offset: 12)
        #expect(error == CodecError(.truncated, "elsewhere", offset: 99))
        #expect(error != CodecError(.trailingBytes, "Welcome.secrets", offset: 12))
        #expect(error.description == "CodecError.truncated (Welcome.secrets at offset 12)")
    }
}

extension TLSReader {
    /// Decodes an `optional<uint16>` spanning all of `bytes`.
    fileprivate static func decode(_ bytes: [UInt8]) throws -> UInt16? {
        var reader = TLSReader(bytes)
        let value = try reader.readOptional(of: UInt16.self)
        guard reader.isAtEnd else { throw CodecError(.trailingBytes, "test", offset: reader.position) }
        return value
    }
}
