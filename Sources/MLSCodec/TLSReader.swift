/// Reads values in the TLS presentation language (RFC 9420 §2.1).
///
/// Every read is bounded by the bytes that remain; a short or malformed input
/// produces a ``CodecError`` and never traps. Nested vectors are read through a
/// reader limited to the vector's body, without copying.
public struct TLSReader: Sendable {
    private let storage: [UInt8]
    public private(set) var position: Int
    private let end: Int

    public init(_ bytes: [UInt8]) {
        storage = bytes
        position = 0
        end = bytes.count
    }

    private init(storage: [UInt8], position: Int, end: Int) {
        self.storage = storage
        self.position = position
        self.end = end
    }

    public var remaining: Int { end - position }
    public var isAtEnd: Bool { position == end }

    private mutating func take(_ count: Int, _ context: @autoclosure () -> String) throws(CodecError) -> Range<Int> {
        guard count >= 0, count <= remaining else {
            throw CodecError(.truncated, context(), offset: position)
        }
        let range = position..<(position + count)
        position += count
        return range
    }

    public mutating func readUInt8(_ context: @autoclosure () -> String = "uint8") throws(CodecError) -> UInt8 {
        let range = try take(1, context())
        return storage[range.lowerBound]
    }

    public mutating func readUInt16(_ context: @autoclosure () -> String = "uint16") throws(CodecError) -> UInt16 {
        let range = try take(2, context())
        return UInt16(storage[range.lowerBound]) << 8 | UInt16(storage[range.lowerBound + 1])
    }

    public mutating func readUInt32(_ context: @autoclosure () -> String = "uint32") throws(CodecError) -> UInt32 {
        let range = try take(4, context())
        var value: UInt32 = 0
        for index in range { value = value << 8 | UInt32(storage[index]) }
        return value
    }

    public mutating func readUInt64(_ context: @autoclosure () -> String = "uint64") throws(CodecError) -> UInt64 {
        let range = try take(8, context())
        var value: UInt64 = 0
        for index in range { value = value << 8 | UInt64(storage[index]) }
        return value
    }

    /// A fixed number of raw bytes (`opaque x[N]`).
    public mutating func readRaw(count: Int, _ context: @autoclosure () -> String = "opaque[N]") throws(CodecError) -> [UInt8] {
        let range = try take(count, context())
        return Array(storage[range])
    }

    /// Everything that is left.
    public mutating func readRemaining() -> [UInt8] {
        let bytes = Array(storage[position..<end])
        position = end
        return bytes
    }

    /// A variable-length header (RFC 9420 §2.1.2). Rejects the reserved
    /// two-bit prefix `11`, non-minimal encodings, and lengths that exceed the
    /// remaining input.
    public mutating func readLength(_ context: @autoclosure () -> String = "vector length") throws(CodecError) -> Int {
        let start = position
        let first = try readUInt8(context())
        let length: Int
        switch first >> 6 {
        case 0:
            length = Int(first)
        case 1:
            let second = try readUInt8(context())
            length = Int(first & 0x3F) << 8 | Int(second)
            guard length >= 0x40 else { throw CodecError(.nonMinimalLength, context(), offset: start) }
        case 2:
            let rest = try readRaw(count: 3, context())
            length = Int(first & 0x3F) << 24 | Int(rest[0]) << 16 | Int(rest[1]) << 8 | Int(rest[2])
            guard length >= 0x4000 else { throw CodecError(.nonMinimalLength, context(), offset: start) }
        default:
            throw CodecError(.lengthTooLarge, context(), offset: start)
        }
        return length
    }

    /// `opaque data<V>`.
    public mutating func readOpaque(_ context: @autoclosure () -> String = "opaque<V>") throws(CodecError) -> [UInt8] {
        let length = try readLength(context())
        let range = try take(length, context())
        return Array(storage[range])
    }

    /// Reads a `<V>` vector's header and hands `body` a reader over exactly its
    /// contents; the body must consume all of them.
    public mutating func readVector<T>(
        _ context: @autoclosure () -> String = "vector<V>",
        _ body: (inout TLSReader) throws -> T
    ) throws -> T {
        let length = try readLength(context())
        let range = try take(length, context())
        var inner = TLSReader(storage: storage, position: range.lowerBound, end: range.upperBound)
        let value = try body(&inner)
        guard inner.isAtEnd else { throw CodecError(.malformedVector, context(), offset: inner.position) }
        return value
    }

    /// The most elements one vector may hold. A decoded element takes more
    /// memory than its encoding (up to ~100 times for a one-byte blank tree
    /// node), so the count is bounded as well as the bytes.
    public static let maxElementCount = 1 << 20

    /// `T items<V>`: decodes elements until the vector's body is consumed.
    public mutating func readVector<T: TLSDecodable>(
        of type: T.Type = T.self,
        _ context: @autoclosure () -> String = "vector<V>",
        maxCount: Int = TLSReader.maxElementCount
    ) throws -> [T] {
        try readVector(context()) { inner in
            var items: [T] = []
            while !inner.isAtEnd {
                guard items.count < maxCount else { throw CodecError(.tooLarge, context(), offset: inner.position) }
                items.append(try T(from: &inner))
            }
            return items
        }
    }

    /// `optional<T>` (RFC 9420 §2.1.1): the presence octet must be 0 or 1.
    public mutating func readOptional<T: TLSDecodable>(
        of type: T.Type = T.self,
        _ context: @autoclosure () -> String = "optional<T>"
    ) throws -> T? {
        let start = position
        switch try readUInt8(context()) {
        case 0: return nil
        case 1: return try T(from: &self)
        default: throw CodecError(.invalidValue, context(), offset: start)
        }
    }

    public mutating func read<T: TLSDecodable>(_ type: T.Type = T.self) throws -> T {
        try T(from: &self)
    }
}
