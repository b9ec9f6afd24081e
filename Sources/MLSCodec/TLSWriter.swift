/// Serialises values in the TLS presentation language with MLS's
/// variable-length vector headers (RFC 9420 §2.1).
public struct TLSWriter: Sendable {
    public private(set) var bytes: [UInt8]

    /// The largest length a variable-length header can carry: 2^30 - 1.
    public static let maxVectorLength = (1 << 30) - 1

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func write(_ value: UInt8) { bytes.append(value) }

    public mutating func write(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    public mutating func write(_ value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
    }

    public mutating func write(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    /// Raw bytes with no length header (fixed-size arrays such as `opaque reuse_guard[4]`).
    public mutating func writeRaw<S: Sequence>(_ raw: S) where S.Element == UInt8 {
        bytes.append(contentsOf: raw)
    }

    /// A variable-length header in its minimal encoding (RFC 9420 §2.1.2).
    ///
    /// Decoded values are at most ``TLSLimits/maxInputLength`` (2^28) long and
    /// the MLS layer refuses to frame content beyond ``maxContentLength``-style
    /// bounds before encoding, so a length over 2^30 - 1 is a programming error.
    public mutating func writeLength(_ length: Int) {
        precondition(length >= 0 && length <= Self.maxVectorLength, "vector longer than 2^30 - 1 bytes")
        if length < 0x40 {
            bytes.append(UInt8(length))
        } else if length < 0x4000 {
            write(UInt16(length) | 0x4000)
        } else {
            write(UInt32(length) | 0x8000_0000)
        }
    }

    /// `opaque data<V>`.
    public mutating func writeOpaque<C: Collection>(_ data: C) where C.Element == UInt8 {
        writeLength(data.count)
        bytes.append(contentsOf: data)
    }

    /// A `<V>` vector whose body is produced by `body`.
    public mutating func writeVector(_ body: (inout TLSWriter) -> Void) {
        var inner = TLSWriter()
        body(&inner)
        writeOpaque(inner.bytes)
    }

    /// `T items<V>`.
    public mutating func writeVector<T: TLSEncodable>(_ items: [T]) {
        writeVector { writer in
            for item in items { item.encode(to: &writer) }
        }
    }

    /// `optional<T>`: a presence octet followed by the value (RFC 9420 §2.1.1).
    public mutating func writeOptional<T: TLSEncodable>(_ value: T?) {
        if let value {
            write(UInt8(1))
            value.encode(to: &self)
        } else {
            write(UInt8(0))
        }
    }

    public mutating func write<T: TLSEncodable>(_ value: T) { value.encode(to: &self) }
}
