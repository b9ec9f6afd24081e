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
        /// Framed content breaks §6: a confirmation tag on a non-commit, a
        /// member PublicMessage without its membership key.
        case invalidFraming
        /// A ratchet tree breaks a structural rule: parent hashes,
        /// unmerged leaves, unique keys (§7.1, §7.3, §7.9.2, §12.4.3.1).
        case invalidTree
        /// An UpdatePath does not fit the tree or the committer (§7.5, §7.6, §12.4.2).
        case invalidUpdatePath
        /// A leaf node fails its validation: source, capabilities,
        /// credential types, lifetime (§7.3, §11.1, §12.1.7).
        case invalidLeafNode
        /// A KeyPackage does not fit the group (§10.1).
        case invalidKeyPackage
        /// A proposal, or a list of them, breaks §12.1 or §12.2.
        case invalidProposal
        /// A commit breaks §12.4: a required path is missing, a proposal
        /// reference is unknown, an external commit's rules (§12.4.3.2).
        case invalidCommit
        /// A Welcome cannot be joined (§12.4.3.1).
        case invalidWelcome
        /// A GroupInfo lacks what the operation needs (§12.4.3).
        case invalidGroupInfo
        /// A pre-shared key is unknown or malformed (§8.4).
        case invalidPreSharedKey
        /// A ReInit or branch does not fit the group (§11.2, §11.3).
        case invalidReInit
        /// The group was reinitialised and takes no more messages (§11.2).
        case groupReinitialised
        /// The epoch counter is exhausted (§8.1).
        case epochExhausted
        /// The caller used the API outside its contract (a bad length, a
        /// missing pending commit, a blank own leaf): not a property of
        /// received data.
        case invalidUse
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
