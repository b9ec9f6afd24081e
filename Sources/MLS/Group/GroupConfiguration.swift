/// Choices a group's owner makes that the RFC leaves to the application.
public struct GroupConfiguration: Sendable, Hashable {
    /// Padding of PrivateMessage content (§6.3.1).
    public var padding: PaddingPolicy
    /// Out-of-order limits of the secret tree (§9.2).
    public var secretTree: SecretTreeConfiguration
    /// How many past epochs' resumption PSKs are kept (§8.6).
    public var resumptionPSKWindow: Int
    /// Whether handshake messages this member sends go out as PublicMessage.
    /// Conclave sends them in the clear so the Delivery Service can check
    /// policy (DESIGN.md §2); application data is always a PrivateMessage.
    public var handshakeAsPublicMessage: Bool
    /// Put the ratchet tree into Welcome and GroupInfo messages (§12.4.3.3).
    public var ratchetTreeExtension: Bool

    public init(
        padding: PaddingPolicy = .default, secretTree: SecretTreeConfiguration = .default, resumptionPSKWindow: Int = 8,
        handshakeAsPublicMessage: Bool = true, ratchetTreeExtension: Bool = true
    ) {
        self.padding = padding
        self.secretTree = secretTree
        self.resumptionPSKWindow = resumptionPSKWindow
        self.handshakeAsPublicMessage = handshakeAsPublicMessage
        self.ratchetTreeExtension = ratchetTreeExtension
    }

    public static let `default` = GroupConfiguration()

    /// Bounds that keep one message's work and memory small: padding up to
    /// 64 KiB blocks, at most 100,000 generations skipped ahead, 10,000 kept
    /// out-of-order keys per ratchet, 1,024 epochs of resumption PSKs.
    public var isWithinLimits: Bool {
        (0...65_536).contains(padding.blockSize) && secretTree.maxForwardDistance <= 100_000
            && (0...10_000).contains(secretTree.outOfOrderTolerance) && (0...1_024).contains(resumptionPSKWindow)
    }
}

/// Where a member finds pre-shared keys (§8.4). External PSKs come from the
/// application; resumption PSKs of the member's own groups come from their
/// state, which the application passes in for other groups (branch, reinit).
public struct PSKStore: Sendable {
    public var external: [[UInt8]: SecretBytes]
    /// Resumption PSKs by group id and epoch.
    public var resumption: [ResumptionKey: SecretBytes]

    public struct ResumptionKey: Hashable, Sendable {
        public let groupID: [UInt8]
        public let epoch: UInt64
        public init(groupID: [UInt8], epoch: UInt64) {
            self.groupID = groupID
            self.epoch = epoch
        }
    }

    public init(external: [[UInt8]: SecretBytes] = [:], resumption: [ResumptionKey: SecretBytes] = [:]) {
        self.external = external
        self.resumption = resumption
    }

    public static let empty = PSKStore()

    /// The PSK for an id, or an error if it is unknown (§12.4.2).
    func secret(for id: PreSharedKeyID) throws(MLSError) -> PreSharedKeyInput {
        let secret: SecretBytes?
        switch id.kind {
        case .external(let pskID): secret = external[pskID]
        case .resumption(_, let groupID, let epoch): secret = resumption[ResumptionKey(groupID: groupID, epoch: epoch)]
        }
        guard let secret else { throw MLSError(.invalidPreSharedKey, "§8.4", "unknown pre-shared key") }
        return PreSharedKeyInput(id: id, secret: secret.bytes)
    }
}
