import MLSCodec

/// A key and nonce from one generation of a hash ratchet (RFC 9420 §9.1).
public struct KeyAndNonce: Sendable, Hashable, CustomStringConvertible {
    public let key: SecretBytes
    public let nonce: SecretBytes
    public let generation: UInt32
    public var description: String { "KeyAndNonce(generation: \(generation), <redacted>)" }
}

/// Which of a leaf's two ratchets (§9.1).
public enum RatchetKind: Sendable, Hashable {
    case handshake
    case application

    var label: String {
        switch self {
        case .handshake: "handshake"
        case .application: "application"
        }
    }
}

/// Limits on how far a receiver follows a ratchet (§9.2, §15.3).
public struct SecretTreeConfiguration: Sendable, Hashable {
    /// How many generations past the next expected one a message may claim.
    public var maxForwardDistance: UInt32
    /// How many skipped keys per ratchet are kept for late messages; older ones
    /// are deleted (forward secrecy bounds the window).
    public var outOfOrderTolerance: Int

    public init(maxForwardDistance: UInt32 = 1000, outOfOrderTolerance: Int = 32) {
        self.maxForwardDistance = maxForwardDistance
        self.outOfOrderTolerance = outOfOrderTolerance
    }

    public static let `default` = SecretTreeConfiguration()
}

/// One hash ratchet (§9.1). Each consumed secret is replaced by the next one.
public struct HashRatchet: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The generation whose secret is `secret`: the next one not yet derived.
    public private(set) var generation: UInt32
    private var secret: [UInt8]
    /// Keys of skipped generations, kept for out-of-order delivery.
    private var skipped: [UInt32: KeyAndNonce] = [:]
    private var exhausted = false

    init(secret: [UInt8]) {
        generation = 0
        self.secret = secret
    }

    public var description: String { "HashRatchet(generation: \(generation), <redacted>)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [:]) }

    private func keyAndNonce(_ provider: CipherSuiteProvider) -> KeyAndNonce {
        KeyAndNonce(
            key: SecretBytes(provider.deriveTreeSecret(secret, label: "key", generation: generation, length: provider.aeadKeyLength)),
            nonce: SecretBytes(provider.deriveTreeSecret(secret, label: "nonce", generation: generation, length: provider.aeadNonceLength)),
            generation: generation)
    }

    /// Moves to the next generation and deletes the current secret.
    private mutating func advance(_ provider: CipherSuiteProvider) {
        secret = provider.deriveTreeSecret(secret, label: "secret", generation: generation, length: provider.hashLength)
        if generation == UInt32.max {
            exhausted = true
        } else {
            generation += 1
        }
    }

    /// The sender's next key: consumes the current generation.
    public mutating func next(_ provider: CipherSuiteProvider) throws(MLSError) -> KeyAndNonce {
        guard !exhausted else { throw MLSError(.keyExhausted, "§9.1", "ratchet generations exhausted") }
        let key = keyAndNonce(provider)
        advance(provider)
        return key
    }

    /// The receiver's key for `target`: derives forward if needed, keeping
    /// skipped keys within the tolerance; every key is returned at most once.
    public mutating func key(
        at target: UInt32, _ provider: CipherSuiteProvider, configuration: SecretTreeConfiguration
    ) throws(MLSError) -> KeyAndNonce {
        if target < generation || exhausted {
            guard let key = skipped.removeValue(forKey: target) else {
                throw MLSError(.generationTooOld, "§9.2", "key for this generation was already used or deleted")
            }
            return key
        }
        guard target - generation <= configuration.maxForwardDistance else {
            throw MLSError(.generationTooFar, "§9.2", "generation too far ahead of the ratchet")
        }
        while generation < target {
            skipped[generation] = keyAndNonce(provider)
            advance(provider)
        }
        if skipped.count > configuration.outOfOrderTolerance {
            let keep = skipped.keys.sorted().suffix(configuration.outOfOrderTolerance)
            skipped = skipped.filter { keep.contains($0.key) }
        }
        return try next(provider)
    }
}

/// A leaf's pair of ratchets.
public struct LeafRatchets: Sendable {
    public var handshake: HashRatchet
    public var application: HashRatchet
    // Printing shows each ratchet's redacted description.

    public subscript(kind: RatchetKind) -> HashRatchet {
        get { kind == .handshake ? handshake : application }
        set {
            switch kind {
            case .handshake: handshake = newValue
            case .application: application = newValue
            }
        }
    }
}

/// The secret tree of one epoch (RFC 9420 §9).
///
/// Node secrets are expanded lazily and deleted once both children exist;
/// each leaf's secret is deleted once its ratchets exist (§9.2). Reading a
/// leaf's ratchets does not change the tree: callers work on the copy and
/// ``store(_:for:)`` it back only once the message it protects is accepted.
public struct SecretTree: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let leafCount: UInt32
    public let configuration: SecretTreeConfiguration
    let provider: CipherSuiteProvider
    private var nodeSecrets: [NodeIndex: [UInt8]]
    private var ratchets: [LeafIndex: LeafRatchets] = [:]

    /// A secret tree over `leafCount` leaves, rounded up to the power of two
    /// the ratchet tree has (§7: trees are always full), at most 2^31.
    public init(
        _ provider: CipherSuiteProvider, encryptionSecret: EncryptionSecret, leafCount: UInt32,
        configuration: SecretTreeConfiguration = .default
    ) {
        self.provider = provider
        var width: UInt32 = 1
        while width < min(leafCount, TreeMath.maxLeafCount) { width <<= 1 }
        self.leafCount = width
        self.configuration = configuration
        nodeSecrets = [TreeMath(leafCount: leafCount).root: encryptionSecret.bytes]
    }

    private var math: TreeMath { TreeMath(leafCount: leafCount) }

    public var description: String { "SecretTree(leaves: \(leafCount), <redacted>)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [:]) }

    /// The child secret of `node` on the side of `child` (§9).
    private func childSecret(of secret: [UInt8], towards child: NodeIndex, parent: NodeIndex) -> [UInt8] {
        let side = child == math.left(parent) ? "left" : "right"
        return provider.expandWithLabel(secret: secret, label: "tree", context: Array(side.utf8), length: provider.hashLength)
    }

    /// The nodes from the leaf's nearest stored ancestor down to the leaf.
    private func pathFromStoredAncestor(to leaf: LeafIndex) throws(MLSError) -> [NodeIndex] {
        guard leaf.rawValue < leafCount else {
            throw MLSError(.invalidSender, "§9", "leaf index outside the secret tree")
        }
        var path = [leaf.nodeIndex]
        while nodeSecrets[path[path.count - 1]] == nil {
            guard let parent = math.parent(path[path.count - 1]) else {
                // Every leaf not yet expanded has an ancestor holding a secret.
                throw MLSError(.generationTooOld, "§9.2", "secret tree node already consumed")
            }
            path.append(parent)
        }
        return path.reversed()
    }

    /// The leaf's ratchets, derived if needed, without changing the tree.
    public func ratchets(for leaf: LeafIndex) throws(MLSError) -> LeafRatchets {
        if let existing = ratchets[leaf] { return existing }
        let path = try pathFromStoredAncestor(to: leaf)
        guard var secret = nodeSecrets[path[0]] else {
            throw MLSError(.generationTooOld, "§9.2", "secret tree node already consumed")
        }
        for index in 1..<path.count {
            secret = childSecret(of: secret, towards: path[index], parent: path[index - 1])
        }
        return LeafRatchets(
            handshake: HashRatchet(
                secret: provider.expandWithLabel(secret: secret, label: "handshake", context: [], length: provider.hashLength)),
            application: HashRatchet(
                secret: provider.expandWithLabel(secret: secret, label: "application", context: [], length: provider.hashLength)))
    }

    /// Stores a leaf's ratchets after use, deleting the node secrets that
    /// produced them (keeping the siblings needed by other leaves).
    public mutating func store(_ leafRatchets: LeafRatchets, for leaf: LeafIndex) {
        if ratchets[leaf] == nil, let path = try? pathFromStoredAncestor(to: leaf) {
            for index in 0..<(path.count - 1) {
                let parent = path[index]
                guard let secret = nodeSecrets.removeValue(forKey: parent),
                    let left = math.left(parent), let right = math.right(parent)
                else { break }
                nodeSecrets[left] = childSecret(of: secret, towards: left, parent: parent)
                nodeSecrets[right] = childSecret(of: secret, towards: right, parent: parent)
            }
            nodeSecrets[leaf.nodeIndex] = nil
        }
        ratchets[leaf] = leafRatchets
    }

    /// The sender's next key for its own leaf.
    public mutating func nextKey(for leaf: LeafIndex, kind: RatchetKind) throws(MLSError) -> KeyAndNonce {
        var leafRatchets = try ratchets(for: leaf)
        let key = try leafRatchets[kind].next(provider)
        store(leafRatchets, for: leaf)
        return key
    }

    /// A receiver's key for `generation` of `leaf`'s ratchet, consumed at once.
    public mutating func key(for leaf: LeafIndex, kind: RatchetKind, generation: UInt32) throws(MLSError) -> KeyAndNonce {
        var leafRatchets = try ratchets(for: leaf)
        let key = try leafRatchets[kind].key(at: generation, provider, configuration: configuration)
        store(leafRatchets, for: leaf)
        return key
    }
}

// MARK: Persistence (part of the group snapshot, see Group+Snapshot.swift)

extension HashRatchet {
    func encode(to writer: inout TLSWriter) {
        writer.write(generation)
        writer.writeOpaque(secret)
        writer.write(UInt8(exhausted ? 1 : 0))
        writer.writeVector { inner in
            for (generation, key) in skipped.sorted(by: { $0.key < $1.key }) {
                inner.write(generation)
                inner.writeOpaque(key.key.bytes)
                inner.writeOpaque(key.nonce.bytes)
            }
        }
    }

    init(from reader: inout TLSReader) throws {
        generation = try reader.readUInt32("HashRatchet.generation")
        secret = try reader.readOpaque("HashRatchet.secret")
        switch try reader.readUInt8("HashRatchet.exhausted") {
        case 0: exhausted = false
        case 1: exhausted = true
        default: throw CodecError(.invalidValue, "HashRatchet.exhausted", offset: reader.position - 1)
        }
        skipped = try reader.readVector("HashRatchet.skipped") { inner in
            var skipped: [UInt32: KeyAndNonce] = [:]
            while !inner.isAtEnd {
                let generation = try inner.readUInt32("skipped.generation")
                let key = try inner.readOpaque("skipped.key")
                let nonce = try inner.readOpaque("skipped.nonce")
                skipped[generation] = KeyAndNonce(key: SecretBytes(key), nonce: SecretBytes(nonce), generation: generation)
            }
            return skipped
        }
    }
}

extension SecretTree {
    func encode(to writer: inout TLSWriter) {
        writer.write(leafCount)
        writer.writeVector { inner in
            for (node, secret) in nodeSecrets.sorted(by: { $0.key < $1.key }) {
                inner.write(node.rawValue)
                inner.writeOpaque(secret)
            }
        }
        writer.writeVector { inner in
            for (leaf, pair) in ratchets.sorted(by: { $0.key < $1.key }) {
                leaf.encode(to: &inner)
                pair.handshake.encode(to: &inner)
                pair.application.encode(to: &inner)
            }
        }
    }

    init(from reader: inout TLSReader, provider: CipherSuiteProvider, configuration: SecretTreeConfiguration) throws {
        self.provider = provider
        self.configuration = configuration
        leafCount = try reader.readUInt32("SecretTree.leaf_count")
        guard leafCount >= 1, leafCount <= TreeMath.maxLeafCount, leafCount & (leafCount - 1) == 0 else {
            throw CodecError(.invalidValue, "SecretTree.leaf_count", offset: reader.position)
        }
        let width = TreeMath(leafCount: leafCount).nodeCount
        nodeSecrets = try reader.readVector("SecretTree.node_secrets") { inner in
            var secrets: [NodeIndex: [UInt8]] = [:]
            while !inner.isAtEnd {
                let node = try inner.readUInt32("node")
                guard node < width else { throw CodecError(.invalidValue, "SecretTree.node", offset: inner.position) }
                secrets[NodeIndex(node)] = try inner.readOpaque("secret")
            }
            return secrets
        }
        ratchets = try reader.readVector("SecretTree.ratchets") { inner in
            var ratchets: [LeafIndex: LeafRatchets] = [:]
            while !inner.isAtEnd {
                let leaf = try LeafIndex(from: &inner)
                guard leaf.rawValue < leafCount else { throw CodecError(.invalidValue, "SecretTree.leaf", offset: inner.position) }
                ratchets[leaf] = LeafRatchets(handshake: try HashRatchet(from: &inner), application: try HashRatchet(from: &inner))
            }
            return ratchets
        }
    }
}
