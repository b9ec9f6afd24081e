/// Standard base64 with padding (RFC 4648 §4), written as
/// `Data.base64EncodedString()` writes it and read without a `String` or
/// a `Data` in between: a message's bytes are encoded and decoded once per
/// send on the server's hot path (issue 14).
public enum Base64Text {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Each byte's value in the alphabet; 0xFF for a byte outside it.
    private static let values: [UInt8] = {
        var values = [UInt8](repeating: 0xFF, count: 256)
        for (value, character) in alphabet.enumerated() { values[Int(character)] = UInt8(value) }
        return values
    }()

    private static let pad = UInt8(ascii: "=")

    /// The length of the encoding of `count` bytes.
    public static func encodedCount(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Writes the encoding of `bytes` at the start of `out`, which holds at
    /// least ``encodedCount(_:)`` bytes.
    public static func encode(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= encodedCount(bytes.count), "base64: the output is too short")
        alphabet.withUnsafeBufferPointer { alphabet in
            func character(_ value: UInt32) -> UInt8 { alphabet[Int(value & 63)] }
            var (input, output) = (0, 0)
            while input + 3 <= bytes.count {
                let value = UInt32(bytes[input]) << 16 | UInt32(bytes[input + 1]) << 8 | UInt32(bytes[input + 2])
                out[output] = character(value >> 18)
                out[output + 1] = character(value >> 12)
                out[output + 2] = character(value >> 6)
                out[output + 3] = character(value)
                (input, output) = (input + 3, output + 4)
            }
            let left = bytes.count - input
            guard left > 0 else { return }
            let value = UInt32(bytes[input]) << 16 | (left == 2 ? UInt32(bytes[input + 1]) << 8 : 0)
            out[output] = character(value >> 18)
            out[output + 1] = character(value >> 12)
            out[output + 2] = left == 2 ? character(value >> 6) : pad
            out[output + 3] = pad
        }
    }

    /// The encoding of `bytes`.
    public static func encode(_ bytes: [UInt8]) -> String {
        let count = encodedCount(bytes.count)
        return String(unsafeUninitializedCapacity: count) { out in
            bytes.withUnsafeBytes { encode($0, into: UnsafeMutableRawBufferPointer(out)) }
            return count
        }
    }

    /// The bytes whose encoding `text` is exactly: a multiple of four
    /// characters of the alphabet, at most two `=` at the end, and no bit
    /// set beyond the last byte. Nil for anything else — which
    /// `Data(base64Encoded:)` may still read (and reads the same way where
    /// this does).
    public static func decodeCanonical(_ text: UnsafeRawBufferPointer) -> [UInt8]? {
        let length = text.count
        guard length.isMultiple(of: 4) else { return nil }
        guard length > 0 else { return [] }
        let padding = text[length - 1] != pad ? 0 : text[length - 2] != pad ? 1 : 2
        let count = length / 4 * 3 - padding
        return values.withUnsafeBufferPointer { values -> [UInt8]? in
            // The group of four characters at `input`, its last `padding` (pad characters) counted as zero bits; nil
            // when a character is outside the alphabet (its value is 0xFF).
            func decodeGroup(at input: Int, padding: Int) -> UInt32? {
                func value(_ offset: Int) -> UInt32 { UInt32(values[Int(text[input + offset])]) }
                let (first, second) = (value(0), value(1))
                let (third, fourth) = (padding == 2 ? 0 : value(2), padding >= 1 ? 0 : value(3))
                guard (first | second | third | fourth) & 0xC0 == 0 else { return nil }
                return first << 18 | second << 12 | third << 6 | fourth
            }
            var valid = true
            let bytes = [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
                initialized = 0
                var (input, output) = (0, 0)
                // Every group but the last: three bytes.
                while input + 4 < length {
                    guard let group = decodeGroup(at: input, padding: 0) else {
                        valid = false
                        return
                    }
                    out[output] = UInt8(truncatingIfNeeded: group >> 16)
                    out[output + 1] = UInt8(truncatingIfNeeded: group >> 8)
                    out[output + 2] = UInt8(truncatingIfNeeded: group)
                    (input, output) = (input + 4, output + 3)
                }
                // The last: the bits past its last byte must be zero.
                guard let group = decodeGroup(at: input, padding: padding), group & ((1 << (8 * padding)) - 1) == 0 else {
                    valid = false
                    return
                }
                for index in 0..<(3 - padding) { out[output + index] = UInt8(truncatingIfNeeded: group >> (16 - 8 * index)) }
                initialized = count
            }
            return valid ? bytes : nil
        }
    }
}
