import ConclaveProtocol
import Foundation
import MLS

/// What this device keeps of the key-transparency logs it checked
/// (docs/transparency.md): per network the newest head it accepted and the
/// highest witness quorum it was told; contradicting heads as evidence; and
/// its own self-check's state.
public struct TransparencyRecord: Codable, Sendable, Hashable {
    public var heads: [String: TransparencyHeadInfo] = [:]
    public var quorums: [String: Int] = [:]
    /// Per network, the witnesses whose cosignatures count, with the keys
    /// pinned when they were first counted.
    public var witnesses: [String: [String: Base64Bytes]] = [:]
    /// Per user (address), the highest entry version this device was shown:
    /// an older entry is not taken again.
    public var versions: [String: UInt64] = [:]
    /// Per user (address), the index of the log their entries are under (hex),
    /// as first shown: another one is refused.
    public var indices: [String: String] = [:]
    public var evidence: [TransparencyEvidence] = []
    public var selfCheck: SelfCheck?

    public init() {}

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        heads = try container.decodeIfPresent([String: TransparencyHeadInfo].self, forKey: .heads) ?? [:]
        quorums = try container.decodeIfPresent([String: Int].self, forKey: .quorums) ?? [:]
        witnesses = try container.decodeIfPresent([String: [String: Base64Bytes]].self, forKey: .witnesses) ?? [:]
        versions = try container.decodeIfPresent([String: UInt64].self, forKey: .versions) ?? [:]
        indices = try container.decodeIfPresent([String: String].self, forKey: .indices) ?? [:]
        evidence = try container.decodeIfPresent([TransparencyEvidence].self, forKey: .evidence) ?? []
        selfCheck = try container.decodeIfPresent(SelfCheck.self, forKey: .selfCheck)
    }

    /// The last check of this user's own entries.
    public struct SelfCheck: Codable, Sendable, Hashable {
        /// The log up to the last checked head, without its leaves.
        public var frontier: MerkleFrontier
        public var checkedAt: Date
        /// Whether an entry with this device's identity key was seen: entries
        /// before it belong to an earlier identity of the account.
        public var sawOwnKey: Bool
        /// What the last check found wrong; nil when all was as published.
        public var problem: String?
    }
}

extension ConclaveClient {
    /// How often an approved device checks its own entries at least.
    static let selfCheckInterval: TimeInterval = 24 * 3600
    /// Contradicting heads kept at most.
    static let evidenceLimit = 20
    /// The most witness cosignatures a network can require (as its server allows).
    static let maximumQuorum = 16
    /// How old a witness's cosignature may be and still count: witnesses
    /// sign the newest head they saw every 10 minutes, so a head whose
    /// cosignatures are all older was not the newest for that long.
    static let cosignatureLifetime: TimeInterval = 24 * 3600
    /// How far ahead of this device's clock a witness's clock may run.
    static let cosignatureClockSkew: TimeInterval = 3600

    /// C9 (docs/client.md): an identity key counts only with an inclusion
    /// proof of its user's newest entry, naming that key, in a head of the
    /// user's network that this device accepts (``acceptHead(_:of:)``).
    func checkTransparency(_ info: UserIdentityInfo) async throws {
        let network = info.user.domain
        guard let inclusion = info.transparency else {
            throw ClientError.transparency(
                "the server gave \(info.user)'s identity key without proof that it is in \(network)'s key-transparency log")
        }
        guard let entry = try? TransparencyEntry(tlsSerialized: inclusion.entry.bytes), entry.identityKey == info.identityKey.bytes
        else { throw ClientError.transparency("the identity key the server gave for \(info.user) is not the one \(network)'s log holds") }
        let head = try await acceptHead(inclusion.head, of: network)
        guard inclusion.position < head.size, head.size <= UInt64(Int.max),
            MerkleLog.verifyInclusion(
                leafHash: entry.leafHash, index: Int(inclusion.position), size: Int(head.size), proof: inclusion.proof.map(\.bytes),
                root: head.root)
        else { throw ClientError.transparency("\(info.user)'s identity key is not in \(network)'s key-transparency log (the proof fails)") }
        // The user's index is the one first shown for them (a server cannot move them to a fresh index to replay an
        // old key there), and an entry older than one this device was shown for the user is a replay of a key the log
        // has since replaced.
        var record = try await transparencyRecord()
        let key = info.user.description
        let index = entry.index.map { String(format: "%02x", $0) }.joined()
        if let pinned = record.indices[key], pinned != index {
            throw ClientError.transparency(
                "the server gave \(info.user)'s key under another index of \(network)'s log than before: it is not accepted")
        }
        record.indices[key] = index
        if let seen = record.versions[key] {
            guard entry.version >= seen else {
                throw ClientError.transparency(
                    "the server gave an older entry of \(network)'s log for \(info.user) (version \(entry.version), after \(seen)): "
                        + "it is not accepted")
            }
            guard entry.version > seen else { return }
        }
        record.versions[key] = entry.version
        try await saveTransparencyRecord(record)
    }

    /// Accepts a network's tree head: signed by the network's key (pinned),
    /// cosigned by as many of its witnesses (peers whose keys this device
    /// has pinned) as the highest quorum it was told, and consistent with
    /// the head of that network this device accepted before. Two heads that
    /// contradict each other are kept as evidence and refused.
    @discardableResult
    func acceptHead(_ info: TransparencyHeadInfo, of network: NetworkDomain) async throws -> TreeHead {
        guard let signed = try? info.signed(), signed.head.domain == network else {
            throw ClientError.transparency("\(network)'s tree head does not decode")
        }
        let key = try await networkKey(for: network)
        guard signed.isValid(for: key) else { throw ClientError.transparency("\(network)'s tree head is not signed by its key") }
        var record = try await transparencyRecord()
        let stored = record
        // A signed head that contradicts one accepted before is evidence whatever its cosignatures.
        var newest = info
        if let last = record.heads[network.value] {
            guard let previous = try? last.signed() else { throw ClientError.localStore("the last tree head of \(network) is unreadable") }
            if let reason = try await contradiction(between: previous.head, and: signed.head, of: network) {
                // Kept once: the same contradicting head shown again does not push older evidence out.
                if !record.evidence.contains(where: { $0.second.head == info.head && $0.second.signature == info.signature }) {
                    record.evidence.append(
                        TransparencyEvidence(network: network, reason: reason, first: last, second: info, foundAt: clock()))
                    record.evidence = Array(record.evidence.suffix(Self.evidenceLimit))
                    try await saveTransparencyRecord(record)
                }
                throw ClientError.transparency("\(network) showed \(reason): its log cannot be trusted (the evidence is kept)")
            }
            if previous.head.size > signed.head.size { newest = last }
        }
        let quorum = min(max(record.quorums[network.value] ?? 0, info.quorum), Self.maximumQuorum)
        let counted = try await countWitnesses(info.witnesses, of: signed.head, network: network, quorum: quorum, record: &record)
        guard counted >= quorum else {
            throw ClientError.transparency(
                "\(network)'s tree head has \(counted) of the \(quorum) witness cosignature(s) required: it is not accepted")
        }
        record.heads[network.value] = newest
        record.quorums[network.value] = quorum
        if record != stored { try await saveTransparencyRecord(record) }  // most lookups change nothing: no write
        return signed.head
    }

    /// The distinct pinned witnesses whose recent cosignatures of `head`
    /// (within ``cosignatureLifetime``) verify under the keys this device
    /// pinned for them. A device pins a network's witnesses once: those
    /// whose cosignatures verify on the first head of that network it sees
    /// while a quorum is required (at most ``maximumQuorum``), and no others
    /// afterwards, so a server cannot add witnesses of its own making to meet
    /// a quorum later (docs/transparency.md, "Witness pins");
    /// ``forgetWitnesses(of:)`` lets the user take the network's witnesses
    /// anew when its administrator changed them.
    private func countWitnesses(
        _ cosignatures: [WitnessCosignature], of head: TreeHead, network: NetworkDomain, quorum: Int, record: inout TransparencyRecord
    ) async throws -> Int {
        let now = clock()
        let recent = { (cosignature: WitnessCosignature) in
            cosignature.date > now.addingTimeInterval(-Self.cosignatureLifetime)
                && cosignature.date < now.addingTimeInterval(Self.cosignatureClockSkew)
        }
        let candidates = cosignatures.prefix(4 * Self.maximumQuorum).filter { $0.witness != network }
        if let pinned = record.witnesses[network.value] {
            var counted: Set<NetworkDomain> = []
            var stale = 0
            for cosignature in candidates {
                guard let key = pinned[cosignature.witness.value],
                    cosignature.isValid(for: head, key: NetworkPublicKey(domain: cosignature.witness, rawKey: key.bytes))
                else { continue }
                if recent(cosignature) { counted.insert(cosignature.witness) } else { stale += 1 }
            }
            if counted.count < quorum, stale > 0 {
                throw ClientError.transparency(
                    "\(network)'s tree head \(ClientError.staleWitnesses) (or ahead of this device's clock): "
                        + "its witnesses may be unreachable, or the server is showing an old log; it is not accepted")
            }
            return counted.count
        }
        guard quorum > 0 else { return 0 }
        var newcomers: [String: Base64Bytes] = [:]
        for cosignature in candidates where recent(cosignature) && newcomers.count < Self.maximumQuorum {
            guard newcomers[cosignature.witness.value] == nil, let key = try? await networkKey(for: cosignature.witness),
                cosignature.isValid(for: head, key: key)
            else { continue }
            newcomers[cosignature.witness.value] = Base64Bytes(key.rawKey)
        }
        guard newcomers.count >= quorum else { return newcomers.count }
        record.witnesses[network.value] = newcomers
        return newcomers.count
    }

    /// Forgets the witnesses this device pinned for a network: the next head
    /// of that network it accepts pins them anew (after the network's
    /// administrator changed its witnesses, `conclave transparency
    /// forget-witnesses`). Whether there were any.
    public func forgetWitnesses(of network: NetworkDomain) async throws -> Bool {
        try await lock.withLock {
            var record = try await self.transparencyRecord()
            guard record.witnesses.removeValue(forKey: network.value) != nil else { return false }
            try await self.saveTransparencyRecord(record)
            return true
        }
    }

    /// Why two heads of one network cannot both be honest, if they cannot.
    private func contradiction(between first: TreeHead, and second: TreeHead, of network: NetworkDomain) async throws -> String? {
        if first.size == second.size { return first.root == second.root ? nil : "two tree heads of the same size with different roots" }
        let (old, new) = first.size < second.size ? (first, second) : (second, first)
        guard old.size > 0 else { return nil }
        guard new.size <= UInt64(Int.max) else { return "a tree head of an impossible size" }
        let path =
            network == (try requireAccount().2.domain)
            ? "/v1/transparency/consistency?from=\(old.size)&to=\(new.size)"
            : "/v1/networks/\(network)/transparency/consistency?from=\(old.size)&to=\(new.size)"
        let proof: TransparencyConsistency
        do { proof = try await api.get(path) } catch let error as ClientError where error.code == .badRequest {
            return "a tree head that does not extend one it showed before (it has no consistency proof)"
        }
        guard proof.from == old.size, proof.to == new.size,
            MerkleLog.verifyConsistency(
                oldSize: Int(old.size), newSize: Int(new.size), oldRoot: old.root, newRoot: new.root, proof: proof.proof.map(\.bytes))
        else { return "a tree head that does not extend one it showed before (the consistency proof fails)" }
        return nil
    }

    public func transparencyRecord() async throws -> TransparencyRecord {
        guard let bytes = try await store.meta("transparency") else { return TransparencyRecord() }
        do { return try ConclaveJSON.decoder().decode(TransparencyRecord.self, from: Data(bytes)) } catch {
            throw ClientError.localStore("the key-transparency record is unreadable")
        }
    }

    private func saveTransparencyRecord(_ record: TransparencyRecord) async throws {
        try await store.setMeta("transparency", Array(try ConclaveJSON.encoder().encode(record)))
    }

    // MARK: Self-monitoring

    /// C10: checks this user's own entries in this network's log, on the
    /// first sync of each run and then at least daily: the newest names
    /// this device's identity key and exactly the devices the user
    /// approved; no entry since the last check names another key for the
    /// user; and the entries the server lists are the log its head commits
    /// to. What is wrong is an alarm (an event), and kept for
    /// `transparency status`.
    func transparencySelfCheck(force: Bool = false) async throws -> [ClientEvent] {
        guard !isPending, let identity = identityKey else { return [] }
        let previous = try await transparencyRecord().selfCheck
        if !force, selfCheckedThisRun, let previous, clock().timeIntervalSince(previous.checkedAt) < Self.selfCheckInterval { return [] }
        selfCheckedThisRun = true
        let found: (frontier: MerkleFrontier, sawOwnKey: Bool, problems: [String])
        do {
            found = try await checkOwnEntries(identity, previous: previous)
        } catch ClientError.transparency(let problem) {
            // What the server gave cannot be checked: the alarm, and the last good state kept.
            found = (previous?.frontier ?? MerkleFrontier(), previous?.sawOwnKey ?? false, [problem])
        }
        let problems = found.problems
        let problem = problems.isEmpty ? nil : problems.joined(separator: "; ")
        var record = try await transparencyRecord()
        record.selfCheck = TransparencyRecord.SelfCheck(
            frontier: found.frontier, checkedAt: clock(), sawOwnKey: found.sawOwnKey, problem: problem)
        try await saveTransparencyRecord(record)
        return problem.map { [.transparencyAlarm($0)] } ?? []
    }

    /// C10's checks; what is wrong, with the frontier and whether this
    /// device's key was seen, as they stand after them.
    private func checkOwnEntries(_ identity: UserIdentityKey, previous: TransparencyRecord.SelfCheck?) async throws -> (
        frontier: MerkleFrontier, sawOwnKey: Bool, problems: [String]
    ) {
        let (account, _, networkKey) = try requireAccount()
        var problems: [String] = []
        // The newest entry, proved in a head this device accepts.
        let info: UserIdentityInfo = try await api.get("/v1/users/\(account.user)/identity")
        guard info.user == account.user else { throw ClientError.invalid("the server answered for another user") }
        try await checkTransparency(info)
        guard let inclusion = info.transparency, let newest = try? TransparencyEntry(tlsSerialized: inclusion.entry.bytes),
            var head = try? inclusion.head.signed().head
        else { throw ClientError.transparency("your own entry does not decode") }
        // The entries are read up to the newest head this device accepted of its network, not only the one its own
        // entry came in: a server that showed it a newer log for another user's key must show that log here too.
        if let accepted = try await transparencyRecord().heads[networkKey.domain.value].flatMap({ try? $0.signed().head }),
            accepted.size > head.size
        {
            head = accepted
        }
        if newest.identityKey != identity.publicKey.rawKey {
            problems.append("the log's newest entry for you names an identity key that is not yours")
        }
        // The approved devices: each approved under this identity key, and the entry commits to exactly them.
        let list: DeviceList = try await api.get("/v1/devices")
        var approved: [(device: DeviceID, signatureKey: [UInt8])] = []
        for device in list.devices where device.pending != true {
            guard let certificate = (try? UnverifiedDeviceCertificate(tlsSerialized: device.certificate.bytes))?.verified(by: networkKey),
                certificate.user == account.user, certificate.device == device.deviceId,
                let approval = device.approval.flatMap({ try? DeviceApproval(tlsSerialized: $0.bytes) }),
                approval.isValid(for: certificate, identity: identity.publicKey)
            else {
                problems.append("device \(device.deviceId) is in your account without your approval")
                continue
            }
            approved.append((device.deviceId, certificate.signatureKey.bytes))
        }
        let approvedDevices = TransparencyEntry.deviceCommitment(approved)
        if newest.devices != approvedDevices {
            problems.append("the log's device set for you is not the devices you approved")
        }
        // Every entry since the last check, read into the frontier: it must give the head's root.
        var frontier = previous?.frontier ?? MerkleFrontier()
        var sawOwnKey = previous?.sawOwnKey ?? false
        if frontier.size > head.size { frontier = MerkleFrontier() }
        while frontier.size < head.size {
            let page: TransparencyEntries = try await api.get("/v1/transparency/entries?start=\(frontier.size)&count=1000")
            guard page.start == frontier.size, !page.entries.isEmpty else {
                throw ClientError.transparency("the server does not list the log's entries")
            }
            for bytes in page.entries where frontier.size < head.size {
                guard let entry = try? TransparencyEntry(tlsSerialized: bytes.bytes) else {
                    throw ClientError.transparency("an entry of the log does not decode")
                }
                frontier.append(leafHash: entry.leafHash)
                guard entry.index == newest.index else {
                    // An identity key is one user's: this one under another index is served to others as someone's.
                    if entry.identityKey == identity.publicKey.rawKey {
                        problems.append("entry \(frontier.size - 1) of the log names your identity key under another index")
                    }
                    continue
                }
                let position = UInt64(frontier.size - 1)
                if entry.identityKey == identity.publicKey.rawKey {
                    sawOwnKey = true
                    // An entry after the one the server gave as the newest: it hid that one, unless it is what the user has now.
                    if position > inclusion.position, entry.devices != approvedDevices {
                        problems.append(
                            "entry \(position) of the log, newer than the one the server gave, names devices you did not approve")
                    }
                } else if sawOwnKey {
                    problems.append(
                        entry.identityKey.isEmpty
                            ? "entry \(frontier.size - 1) of the log says your account has no identity key"
                            : "entry \(frontier.size - 1) of the log names an identity key for you that is not yours")
                }
            }
        }
        if frontier.root != head.root {
            problems.append("the entries the server lists are not the log its tree head commits to")
            frontier = previous?.frontier ?? MerkleFrontier()
        }
        return (frontier, sawOwnKey, problems)
    }

    /// Runs the self-check now (`conclave transparency check`); the alarm, if any.
    public func checkOwnTransparency() async throws -> [ClientEvent] {
        try await lock.withLock { try await self.transparencySelfCheck(force: true) }
    }
}

/// What an auditor keeps between runs: per network, its key and the heads
/// it has seen.
public struct TransparencyAuditState: Codable, Sendable, Hashable {
    public var networks: [String: Network] = [:]

    public struct Network: Codable, Sendable, Hashable {
        public var key: Base64Bytes
        public var heads: [TransparencyHeadInfo]
    }

    public init() {}
}

/// The outcome of one audit.
public struct TransparencyAuditReport: Sendable, Hashable {
    public var network: NetworkDomain
    public var head: TreeHead
    public var witnesses: Int
    public var entries: UInt64
    /// Distinct user indices in the log.
    public var users: Int
    /// Heads seen in earlier runs, checked against the log now.
    public var headsChecked: Int
    /// What is wrong; empty when the log is consistent with everything seen.
    public var problems: [String]
}

/// `conclave transparency audit`: downloads a network's whole log and
/// checks it against its newest signed head and every head seen before.
public enum TransparencyAuditor {
    public static func audit(server: String, state: inout TransparencyAuditState) async throws -> TransparencyAuditReport {
        let api = HTTPAPI(baseURL: server, token: nil)
        let wellKnown: WellKnown = try await api.get("/.well-known/conclave")
        let key = NetworkPublicKey(domain: wellKnown.domain, rawKey: wellKnown.signingKey.bytes)
        let network = wellKnown.domain
        var problems: [String] = []
        var known = state.networks[network.value] ?? .init(key: wellKnown.signingKey, heads: [])
        if known.key != wellKnown.signingKey {
            throw ClientError.transparency("\(network)'s key is not the one this auditor saw before: nothing was checked")
        }
        let info: TransparencyHeadInfo = try await api.get("/.well-known/conclave-transparency")
        guard let signed = try? info.signed(), signed.head.domain == network, signed.isValid(for: key) else {
            throw ClientError.transparency("\(network)'s tree head is not signed by its key")
        }
        let head = signed.head
        guard head.size < 1 << 40 else { throw ClientError.transparency("\(network)'s tree head names an impossible size") }
        var log = MerkleLog()
        var versions: [[UInt8]: UInt64] = [:]
        while UInt64(log.size) < head.size {
            let page: TransparencyEntries = try await api.get("/v1/transparency/entries?start=\(log.size)&count=1000")
            guard page.start == UInt64(log.size), !page.entries.isEmpty else {
                throw ClientError.transparency("\(network) does not list its log's entries past \(log.size)")
            }
            for bytes in page.entries where UInt64(log.size) < head.size {
                guard let entry = try? TransparencyEntry(tlsSerialized: bytes.bytes) else {
                    problems.append("entry \(log.size) does not decode")
                    log.append(leafHash: MerkleLog.leafHash(bytes.bytes))
                    continue
                }
                let expected = (versions[entry.index] ?? 0) + 1
                if entry.version != expected {
                    problems.append("entry \(log.size) has version \(entry.version) where \(expected) comes next for its user")
                }
                versions[entry.index] = entry.version
                log.append(leafHash: entry.leafHash)
            }
        }
        if log.root(size: Int(head.size)) != head.root { problems.append("the entries listed are not the log the newest head commits to") }
        var checked = 0
        for seen in known.heads {
            guard let earlier = try? seen.signed().head else { continue }
            checked += 1
            if earlier.size > head.size {
                problems.append("the log holds \(head.size) entries but a head of \(earlier.size) was seen before: it was truncated")
            } else if log.root(size: Int(earlier.size)) != earlier.root {
                problems.append("the log's first \(earlier.size) entries no longer give the head seen before: an entry was altered")
            }
        }
        if !known.heads.contains(info) { known.heads = Array((known.heads + [info]).suffix(100)) }
        state.networks[network.value] = known
        return TransparencyAuditReport(
            network: network, head: head, witnesses: info.witnesses.count, entries: head.size, users: versions.count, headsChecked: checked,
            problems: problems)
    }
}
