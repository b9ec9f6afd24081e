import MLSCodec

/// `Credential` (§5.3).
public enum Credential: Hashable, Sendable, TLSCodable {
    /// A basic credential: an application-defined identity.
    case basic(identity: [UInt8])
    /// An X.509 chain, leaf first; each element is DER.
    case x509(certificates: [[UInt8]])

    public var type: CredentialType {
        switch self {
        case .basic: .basic
        case .x509: .x509
        }
    }

    public func encode(to writer: inout TLSWriter) {
        type.encode(to: &writer)
        switch self {
        case .basic(let identity):
            writer.writeOpaque(identity)
        case .x509(let certificates):
            writer.writeVector { inner in
                for certificate in certificates { inner.writeOpaque(certificate) }
            }
        }
    }

    public init(from reader: inout TLSReader) throws {
        let offset = reader.position
        let type = try CredentialType(from: &reader)
        switch type {
        case .basic:
            self = .basic(identity: try reader.readOpaque("Credential.identity"))
        case .x509:
            let certificates = try reader.readVector(of: OpaqueBytes.self, "Credential.certificates")
            self = .x509(certificates: certificates.map(\.bytes))
        default:
            // Other credential types carry no length prefix, so they cannot be skipped.
            throw CodecError(.unknownValue, "Credential.credential_type", offset: offset)
        }
    }
}
