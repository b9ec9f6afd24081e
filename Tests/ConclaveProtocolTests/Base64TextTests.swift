import ConclaveProtocol
import Foundation
import Testing

/// `Base64Text` against Foundation's base64: the same text written, the
/// same bytes read, and only canonical text read.
@Suite struct Base64TextTests {
    /// Bytes of every length from 0 to 300, of a fixed pseudo-random pattern.
    static let samples: [[UInt8]] = (0...300).map { length in
        var state = UInt32(truncatingIfNeeded: length) &* 2_654_435_761 | 1
        return (0..<length).map { _ in
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            return UInt8(truncatingIfNeeded: state)
        }
    }

    static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { Base64Text.decodeCanonical(UnsafeRawBufferPointer($0)) }
    }

    @Test("Every length encodes as Foundation encodes it, and reads back")
    func roundTrip() {
        for bytes in Self.samples {
            let text = Base64Text.encode(bytes)
            #expect(text == Data(bytes).base64EncodedString(), "\(bytes.count) bytes")
            #expect(Self.decode(text) == bytes, "\(bytes.count) bytes")
        }
    }

    @Test("Text that is not the canonical encoding of some bytes is not read; Foundation reads what this reads the same way")
    func onlyCanonicalText() {
        for text in [
            "QR==", "QUF=", "QUJ=",  // bits set past the last byte
            "QQ", "QUE", "QUJDR",  // not a multiple of four
            "QQ==QQ==", "Q===", "====", "=QQQ", "QQ=Q",  // a pad character inside
            "QU\nJD", "QUJD ", "QUJ-", "QUJ_", "QUJ\u{00E9}",  // outside the alphabet
        ] {
            #expect(Self.decode(text) == nil, "\(text)")
        }
        for text in ["", "QQ==", "QUE=", "QUJD", "+/+/", "////", "AAAA"] {
            let read = Self.decode(text)
            #expect(read != nil && read == Data(base64Encoded: text).map(Array.init), "\(text)")
        }
        // Any single character changed in a valid text: if this still reads it, Foundation reads the same bytes.
        let base = Array(Base64Text.encode(Self.samples[7]).utf8)
        for index in base.indices {
            for byte in UInt8(0x20)...UInt8(0x7E) {
                var changed = base
                changed[index] = byte
                let text = String(decoding: changed, as: UTF8.self)
                if let read = Self.decode(text) { #expect(Data(base64Encoded: text).map(Array.init) == read, "\(text)") }
            }
        }
    }

    @Test("Base64Bytes reads canonical text, and still reads what Foundation reads beyond it")
    func base64BytesDecoding() throws {
        struct Box: Codable { let value: Base64Bytes }
        let decoder = JSONDecoder()
        #expect(try decoder.decode(Box.self, from: Data(#"{"value":"QUJD"}"#.utf8)).value.bytes == Array("ABC".utf8))
        // Bits past the last byte: not canonical, read by Foundation as it always was.
        let lenient = try decoder.decode(Box.self, from: Data(#"{"value":"QR=="}"#.utf8)).value.bytes
        #expect(lenient == Data(base64Encoded: "QR==").map(Array.init))
        #expect(throws: DecodingError.self) { try decoder.decode(Box.self, from: Data(#"{"value":"Q"}"#.utf8)) }
    }
}
