import ConclaveProtocol
import ConclaveStorage
import MLS

/// What a policy check knows of this network's federation.
struct FederationFacts: Sendable {
    var mode: FederationMode
    var peers: Set<NetworkDomain>
}

/// The security-group rules (DESIGN.md §5) as pure functions: rule P1
/// (segmentation), P2 (settings within bounds) and F5 (federation reach),
/// numbered in docs/server.md and docs/federation.md. They decide from
/// the policies handed to them and do no I/O.
enum PolicyRules {
    /// P1: `added` users may share a conversation with every user of
    /// `members`, and they with them, under both groups' "may message".
    /// The refusal names no other user's group (it is not the asker's to know).
    static func checkSegmentation(
        added: some Collection<UserName>, members: some Collection<UserName>, _ policies: [UserName: SecurityGroupPolicy]
    ) throws(APIError) {
        for newcomer in added {
            guard let mine = policies[newcomer] else { throw APIError.notFound("user") }
            for other in members where other != newcomer {
                guard let theirs = policies[other] else { throw APIError.notFound("user") }
                guard mine.mayShare(with: theirs) else {
                    throw APIError(.policySegmentation, "these users' security groups may not share a conversation (may-message policy)")
                }
            }
        }
    }

    /// P2, P4: the bounds of a conversation of users in these groups.
    static func bounds(_ policies: some Collection<SecurityGroupPolicy>) throws(APIError) -> ConversationBounds {
        guard let bounds = ConversationBounds(intersecting: Array(policies)) else {
            throw APIError(.policyConflict, "the members' security groups' message lifetime bounds do not overlap (lifetime policy)")
        }
        guard !bounds.cipherSuites.isEmpty else {
            throw APIError(
                .policyConflict,
                "one member's security group requires post-quantum conversations and another's allows only classical ones (cipher-suite policy)"
            )
        }
        return bounds
    }

    /// P4: a conversation of this suite is allowed by every member's group.
    static func checkCipherSuite(_ suite: CipherSuite, _ policies: some Collection<SecurityGroupPolicy>) throws(APIError) {
        let kinds = Set(policies.map(\.cipherSuites))
        if kinds.contains(.pqRequired) && !suite.isPostQuantum {
            throw APIError(
                .policyCipherSuite,
                "a member's security group requires post-quantum conversations; this one uses \(suite) (cipher-suite policy)")
        }
        if kinds.contains(.classical) && suite.isPostQuantum {
            throw APIError(
                .policyCipherSuite,
                "a member's security group allows only classical conversations; this one uses \(suite) (cipher-suite policy)")
        }
    }

    /// P2: the settings are within the bounds of all members' groups.
    static func checkSettings(_ settings: ConversationSettings, _ policies: some Collection<SecurityGroupPolicy>) throws(APIError) {
        if let problem = try bounds(policies).problem(settings) {
            throw APIError(.policySettings, "these conversation settings are outside the members' security-group policy: \(problem)")
        }
    }

    /// S2, S4: a user of this security group may upload or download a
    /// sealed file of `size` bytes: files are on, and the file is within
    /// the group's maximum (compared sealed: the maximum plus its sealing).
    static func checkFile(size: UInt64, _ policy: SecurityGroupPolicy, download: Bool) throws(APIError) {
        guard policy.files else {
            throw APIError(.policyFiles, "your security group does not allow \(download ? "receiving" : "sending") files (file policy)")
        }
        guard size <= EncryptedFile.sealedSize(of: policy.maxFileSize) else {
            throw APIError(
                .policyFileSize,
                "the file is larger than your security group allows (max-file-size \(policy.maxFileSize) bytes)")
        }
    }

    /// F5 on this side: every remote member's network is a peer, and each
    /// pair of a local and a remote member in which one is new is allowed
    /// by the local member's security-group federation setting.
    static func checkFederation(
        _ policies: [UserName: SecurityGroupPolicy], local domain: NetworkDomain, remote: some Collection<UserAddress>,
        newcomers: some Collection<UserAddress>, _ federation: FederationFacts
    ) throws(APIError) {
        guard !remote.isEmpty else { return }
        guard federation.mode != .off else { throw APIError(.federationOff, "\(domain) does not federate") }
        for network in Set(remote.map(\.domain)) where !federation.peers.contains(network) {
            throw APIError(.unknownNetwork, "\(domain) does not federate with \(network)")
        }
        let fresh = Set(newcomers)
        for (name, policy) in policies {
            for other in remote where fresh.contains(other) || fresh.contains(UserAddress(name: name, domain: domain)) {
                guard policy.federation.contains(other.domain) else {
                    throw APIError(.policyFederation, "a member's security group may not reach \(other.domain) (federation policy)")
                }
            }
        }
    }
}
