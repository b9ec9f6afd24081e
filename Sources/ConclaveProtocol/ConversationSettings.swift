import MLS
import MLSCodec

/// A conversation's settings, carried in its GroupContext (DESIGN.md §2) so
/// that every member agrees on them cryptographically and the Delivery
/// Service can read them:
///
/// ```
/// struct {
///     uint64 message_lifetime;   // seconds; 0: messages do not expire
///     uint64 burn_on_read;       // seconds after reading; 0: off
/// } ConversationSettings;        // extension type 0xF0C0 (private use)
/// ```
public struct ConversationSettings: Hashable, Sendable, TLSCodable {
    public static let extensionType = ExtensionType(rawValue: 0xF0C0)
    /// The longest lifetime or delay accepted: ten years.
    public static let maximumSeconds: UInt64 = 10 * 365 * 86_400

    public var messageLifetime: UInt64
    public var burnOnRead: UInt64

    public init(messageLifetime: UInt64 = 0, burnOnRead: UInt64 = 0) {
        self.messageLifetime = messageLifetime
        self.burnOnRead = burnOnRead
    }

    /// Both values are at most ``maximumSeconds``.
    public var isValid: Bool { messageLifetime <= Self.maximumSeconds && burnOnRead <= Self.maximumSeconds }
    public var isDefault: Bool { messageLifetime == 0 && burnOnRead == 0 }

    public var `extension`: Extension { Extension(type: Self.extensionType, data: tlsSerialized) }

    /// The settings in a GroupContext's extensions: the defaults when absent,
    /// nil when present but malformed.
    public init?(extensions: [Extension]) {
        guard let ext = extensions.first(ofType: Self.extensionType) else {
            self.init()
            return
        }
        guard let decoded = try? ConversationSettings(tlsSerialized: ext.data), decoded.isValid else { return nil }
        self = decoded
    }

    /// What a leaf lists in its capabilities so groups may carry the
    /// settings: the group's suite, and the other suites of a Conclave
    /// device (so members can tell that all could move to one by ReInit).
    public static func capabilities(_ suite: CipherSuite) -> Capabilities {
        Capabilities(
            versions: [.mls10], cipherSuites: [suite] + CipherSuite.deviceSuites.filter { $0 != suite },
            extensions: [extensionType, DeviceApproval.extensionType, ConversationGeneration.extensionType], proposals: [],
            credentials: [.basic])
    }

    public func encode(to writer: inout TLSWriter) {
        writer.write(messageLifetime)
        writer.write(burnOnRead)
    }

    public init(from reader: inout TLSReader) throws {
        messageLifetime = try reader.readUInt64("ConversationSettings.message_lifetime")
        burnOnRead = try reader.readUInt64("ConversationSettings.burn_on_read")
    }
}
