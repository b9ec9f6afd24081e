/// Marks which key-schedule secret a ``Secret`` holds, so that two secrets of
/// different roles cannot be swapped by mistake (RFC 9420 §8).
public protocol SecretRole: Sendable {}

/// A secret of one role in the key schedule. Prints as `<redacted>` and
/// compares in constant time.
public struct Secret<Role: SecretRole>: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let value: SecretBytes
    public init(_ bytes: [UInt8]) { value = SecretBytes(bytes) }
    public var bytes: [UInt8] { value.bytes }
    public var description: String { "\(Role.self)(<redacted>)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}

public enum InitSecretRole: SecretRole {}
public enum CommitSecretRole: SecretRole {}
public enum PSKSecretRole: SecretRole {}
public enum JoinerSecretRole: SecretRole {}
public enum WelcomeSecretRole: SecretRole {}
public enum EpochSecretRole: SecretRole {}
public enum SenderDataSecretRole: SecretRole {}
public enum EncryptionSecretRole: SecretRole {}
public enum ExporterSecretRole: SecretRole {}
public enum ExternalSecretRole: SecretRole {}
public enum ConfirmationKeyRole: SecretRole {}
public enum MembershipKeyRole: SecretRole {}
public enum ResumptionPSKRole: SecretRole {}
public enum EpochAuthenticatorRole: SecretRole {}

public typealias InitSecret = Secret<InitSecretRole>
public typealias CommitSecret = Secret<CommitSecretRole>
public typealias PSKSecret = Secret<PSKSecretRole>
public typealias JoinerSecret = Secret<JoinerSecretRole>
public typealias WelcomeSecret = Secret<WelcomeSecretRole>
public typealias EpochSecret = Secret<EpochSecretRole>
public typealias SenderDataSecret = Secret<SenderDataSecretRole>
public typealias EncryptionSecret = Secret<EncryptionSecretRole>
public typealias ExporterSecret = Secret<ExporterSecretRole>
public typealias ExternalSecret = Secret<ExternalSecretRole>
public typealias ConfirmationKey = Secret<ConfirmationKeyRole>
public typealias MembershipKey = Secret<MembershipKeyRole>
public typealias ResumptionPSK = Secret<ResumptionPSKRole>
/// Not secret from the members (they compare it out of band), but from everyone else.
public typealias EpochAuthenticator = Secret<EpochAuthenticatorRole>
