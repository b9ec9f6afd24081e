import MLSCodec

/// A 16-bit registry value that may be unknown to this implementation
/// (GREASE, RFC 9420 §13.5) and must still round-trip.
public protocol UInt16Code: RawRepresentable, Hashable, Sendable, TLSCodable where RawValue == UInt16 {
    init(rawValue: UInt16)
}

extension UInt16Code {
    public func encode(to writer: inout TLSWriter) { writer.write(rawValue) }
    public init(from reader: inout TLSReader) throws { self.init(rawValue: try reader.readUInt16(String(describing: Self.self))) }
}

/// `ProtocolVersion` (§6).
public struct ProtocolVersion: UInt16Code {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let mls10 = ProtocolVersion(rawValue: 1)
}

/// `ExtensionType` (§17.3).
public struct ExtensionType: UInt16Code {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let applicationID = ExtensionType(rawValue: 1)
    public static let ratchetTree = ExtensionType(rawValue: 2)
    public static let requiredCapabilities = ExtensionType(rawValue: 3)
    public static let externalPub = ExtensionType(rawValue: 4)
    public static let externalSenders = ExtensionType(rawValue: 5)
}

/// `ProposalType` (§17.4).
public struct ProposalType: UInt16Code {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let add = ProposalType(rawValue: 1)
    public static let update = ProposalType(rawValue: 2)
    public static let remove = ProposalType(rawValue: 3)
    public static let psk = ProposalType(rawValue: 4)
    public static let reinit = ProposalType(rawValue: 5)
    public static let externalInit = ProposalType(rawValue: 6)
    public static let groupContextExtensions = ProposalType(rawValue: 7)
}

/// `CredentialType` (§17.5).
public struct CredentialType: UInt16Code {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let basic = CredentialType(rawValue: 1)
    public static let x509 = CredentialType(rawValue: 2)
}

/// A closed 8- or 16-bit enum whose unknown values are a decoding error.
public protocol ClosedCode: RawRepresentable, TLSCodable where RawValue: FixedWidthInteger & TLSCodable {}

extension ClosedCode {
    public func encode(to writer: inout TLSWriter) { rawValue.encode(to: &writer) }
    public init(from reader: inout TLSReader) throws {
        let offset = reader.position
        let raw = try RawValue(from: &reader)
        guard let value = Self(rawValue: raw) else {
            throw CodecError(.unknownValue, String(describing: Self.self), offset: offset)
        }
        self = value
    }
}

/// `WireFormat` (§6, §17.2).
public enum WireFormat: UInt16, Sendable, Hashable, ClosedCode {
    case publicMessage = 1
    case privateMessage = 2
    case welcome = 3
    case groupInfo = 4
    case keyPackage = 5
}

/// `ContentType` (§6).
public enum ContentType: UInt8, Sendable, Hashable, ClosedCode {
    case application = 1
    case proposal = 2
    case commit = 3
}

/// `SenderType` (§6).
public enum SenderType: UInt8, Sendable, Hashable, ClosedCode {
    case member = 1
    case external = 2
    case newMemberProposal = 3
    case newMemberCommit = 4
}

/// `LeafNodeSource` (§7.2).
public enum LeafNodeSource: UInt8, Sendable, Hashable, ClosedCode {
    case keyPackage = 1
    case update = 2
    case commit = 3
}

/// `NodeType` (§7.8).
public enum NodeType: UInt8, Sendable, Hashable, ClosedCode {
    case leaf = 1
    case parent = 2
}

/// `PSKType` (§8.4).
public enum PSKType: UInt8, Sendable, Hashable, ClosedCode {
    case external = 1
    case resumption = 2
}

/// `ResumptionPSKUsage` (§8.4).
public enum ResumptionPSKUsage: UInt8, Sendable, Hashable, ClosedCode {
    case application = 1
    case reinit = 2
    case branch = 3
}

/// `ProposalOrRefType` (§12.4).
public enum ProposalOrRefType: UInt8, Sendable, Hashable, ClosedCode {
    case proposal = 1
    case reference = 2
}
