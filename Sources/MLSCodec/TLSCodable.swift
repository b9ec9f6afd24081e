/// A value with an RFC 9420 §2.1 (TLS presentation language) encoding.
public protocol TLSEncodable {
    func encode(to writer: inout TLSWriter)
}

/// A value decodable from its RFC 9420 §2.1 encoding. Decoding throws a
/// ``CodecError`` (or a typed error of the protocol layer) and never traps.
public protocol TLSDecodable {
    init(from reader: inout TLSReader) throws
}

public typealias TLSCodable = TLSEncodable & TLSDecodable

extension TLSEncodable {
    /// The value's complete encoding.
    public var tlsSerialized: [UInt8] {
        var writer = TLSWriter()
        encode(to: &writer)
        return writer.bytes
    }
}

/// Decoding limits that keep hostile input from costing more than it weighs.
public enum TLSLimits {
    /// The largest input decoded as one value: 256 MiB. Anything built from a
    /// decoded value (a signature's content, a reference hash input) then
    /// stays well inside the 2^30 - 1 bound of a vector length.
    public static let maxInputLength = 1 << 28
}

extension TLSDecodable {
    /// Decodes a value that must span all of `bytes`, which may be at most
    /// ``TLSLimits/maxInputLength`` long.
    public init(tlsSerialized bytes: [UInt8]) throws {
        guard bytes.count <= TLSLimits.maxInputLength else {
            throw CodecError(.tooLarge, String(describing: Self.self), offset: 0)
        }
        var reader = TLSReader(bytes)
        self = try Self(from: &reader)
        guard reader.isAtEnd else {
            throw CodecError(.trailingBytes, String(describing: Self.self), offset: reader.position)
        }
    }
}

extension UInt8: TLSCodable {
    public func encode(to writer: inout TLSWriter) { writer.write(self) }
    public init(from reader: inout TLSReader) throws { self = try reader.readUInt8() }
}

extension UInt16: TLSCodable {
    public func encode(to writer: inout TLSWriter) { writer.write(self) }
    public init(from reader: inout TLSReader) throws { self = try reader.readUInt16() }
}

extension UInt32: TLSCodable {
    public func encode(to writer: inout TLSWriter) { writer.write(self) }
    public init(from reader: inout TLSReader) throws { self = try reader.readUInt32() }
}

extension UInt64: TLSCodable {
    public func encode(to writer: inout TLSWriter) { writer.write(self) }
    public init(from reader: inout TLSReader) throws { self = try reader.readUInt64() }
}

/// `opaque data<V>` as a standalone value, e.g. an element of `opaque certificates<V>`.
public struct OpaqueBytes: TLSCodable, Hashable, Sendable {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public func encode(to writer: inout TLSWriter) { writer.writeOpaque(bytes) }
    public init(from reader: inout TLSReader) throws { bytes = try reader.readOpaque() }
}
