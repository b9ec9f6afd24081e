import Crypto
import Foundation
import MLSCodec

/// One entry of the administrators' audit log (DESIGN.md §4): who did what
/// to which target, when, and the target's state before and after (JSON
/// text). Entries form a hash chain: each hash covers the entry and the
/// previous entry's hash, and the network key signs each hash, so a row
/// altered, inserted or deleted in the database breaks the chain, and
/// recomputing the chain needs the network's signing key, which is kept
/// outside the database.
public struct AuditEntry: Codable, Sendable, Hashable {
    public var seq: Int64
    public var at: Date
    /// Who acted: `admin` for the administrator token.
    public var actor: String
    /// What was done: `user.create`, `group.update`, …
    public var action: String
    /// What it was done to: `user:alice`, `group:staff`.
    public var target: String
    public var before: String?
    public var after: String?
    /// Hex SHA-256 of the previous entry (64 zeros for the first).
    public var prevHash: String
    public var hash: String
    /// Base64 Ed25519 signature of the network key over ``signedBytes``.
    public var signature: Base64Bytes

    public init(
        seq: Int64, at: Date, actor: String, action: String, target: String, before: String?, after: String?, prevHash: String,
        hash: String, signature: Base64Bytes
    ) {
        self.seq = seq
        self.at = at
        self.actor = actor
        self.action = action
        self.target = target
        self.before = before
        self.after = after
        self.prevHash = prevHash
        self.hash = hash
        self.signature = signature
    }

    public static let genesisHash = String(repeating: "0", count: 64)
    static let label = Array("Conclave audit entry v1".utf8)

    /// The hash this entry should carry, from its fields and `prevHash`:
    /// SHA-256 over a TLS-style encoding (times in whole milliseconds).
    public var computedHash: String {
        var writer = TLSWriter()
        writer.writeOpaque(Self.label)
        writer.write(UInt64(bitPattern: seq))
        writer.write(UInt64(bitPattern: Int64((at.timeIntervalSince1970 * 1000).rounded())))
        for text in [actor, action, target] { writer.writeOpaque(Array(text.utf8)) }
        for text in [before, after] {
            writer.write(UInt8(text == nil ? 0 : 1))
            writer.writeOpaque(Array((text ?? "").utf8))
        }
        writer.writeOpaque(Array(prevHash.utf8))
        return Hex.encode(SHA256.hash(data: writer.bytes))
    }

    /// What the network key signs: a label and the hash.
    public var signedBytes: [UInt8] { Self.label + Array(hash.utf8) }
}

public struct AuditLog: Codable, Sendable, Hashable {
    public var entries: [AuditEntry]

    public init(entries: [AuditEntry]) { self.entries = entries }
}

/// The outcome of checking an audit log.
public struct AuditVerification: Sendable, Hashable, Codable {
    public var entries: Int
    /// The last entry's hash: record it to detect a later truncation.
    public var head: String
    /// The first entry that fails, and why; nil when the chain holds.
    public var brokenAt: Int64?
    public var problem: String?

    public var isIntact: Bool { brokenAt == nil }

    /// Checks a whole log, oldest first, from its first entry: sequence
    /// numbers without gaps, each hash recomputed, each link to the
    /// previous hash, each signature by the network key.
    public init(checking entries: [AuditEntry], key: NetworkPublicKey) {
        self.entries = entries.count
        head = entries.last?.hash ?? AuditEntry.genesisHash
        var previous = AuditEntry.genesisHash
        var expectedSeq: Int64 = 1
        for entry in entries {
            let problem: String? =
                if entry.seq != expectedSeq {
                    "entry \(expectedSeq) is missing"
                } else if entry.prevHash != previous {
                    "its link to the previous entry is broken (an entry was deleted or altered)"
                } else if entry.computedHash != entry.hash {
                    "its content does not match its hash (the entry was altered)"
                } else if !key.isValidSignature(entry.signature.bytes, for: entry.signedBytes) {
                    "its signature by the network key does not verify"
                } else {
                    nil
                }
            if let problem {
                brokenAt = entry.seq
                self.problem = problem
                return
            }
            previous = entry.hash
            expectedSeq += 1
        }
    }
}

extension NetworkSigningKey {
    /// The network key's signature of an audit entry's hash.
    public func signature(for entry: AuditEntry) throws -> Base64Bytes { Base64Bytes(try sign(entry.signedBytes)) }
}
