import MLSCodec

/// A protocol failure. Equality compares the `code` only.
///
/// `rule` names the RFC 9420 section (and, where numbered, the validation rule
/// in docs/mls.md) that failed. Descriptions never contain secret or user data.
public struct MLSError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        case malformed
        case unsupportedCipherSuite
        case unsupportedProtocolVersion
        case invalidKey
        case invalidSignature
        case invalidMembershipTag
        case invalidConfirmationTag
        case decryptionFailed
        case wrongGroup
        case wrongEpoch
        case wrongWireFormat
        case invalidSender
        case invalidContentType
        case invalidPadding
        case generationTooOld
        case generationTooFar
        case keyExhausted
        case messageTooLarge
        case invalidArgument
    }

    public let code: Code
    /// The RFC 9420 section or docs/mls.md rule that failed, e.g. `"§6.3.2"`.
    public let rule: String
    /// A fixed description of the failure. Never contains input data.
    public let message: String

    public init(_ code: Code, _ rule: String, _ message: String) {
        self.code = code
        self.rule = rule
        self.message = message
    }

    /// Wraps a codec failure as ``Code/malformed``.
    public init(_ error: CodecError) {
        self.init(.malformed, "§2.1", error.description)
    }

    public static func == (lhs: MLSError, rhs: MLSError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String { "MLSError.\(code.rawValue) [\(rule)]: \(message)" }
}

/// Decodes `T`, mapping codec failures to ``MLSError/Code/malformed``.
func decodeMLS<T: TLSDecodable>(_ type: T.Type, from bytes: [UInt8]) throws(MLSError) -> T {
    do {
        return try T(tlsSerialized: bytes)
    } catch let error as CodecError {
        throw MLSError(error)
    } catch let error as MLSError {
        throw error
    } catch {
        throw MLSError(.malformed, "§2.1", "undecodable \(T.self)")
    }
}
