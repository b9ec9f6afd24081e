import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The log as this process holds it: the leaf hashes of the stored entries
/// in a ``MerkleLog``, brought up to date from the database before each
/// answer (entries are appended by any process, in the transaction that
/// changed the user; the database is the log).
actor TransparencyLogMirror {
    private let store: ConclaveStore
    private var log = MerkleLog()
    private var times: [UInt64] = []

    init(store: ConclaveStore) { self.store = store }

    /// Reads the entries appended since; returns the size.
    @discardableResult
    func sync() async throws -> UInt64 {
        while true {
            let batch = try await store.transparencyEntries(from: UInt64(log.size), limit: 10_000)
            for stored in batch where stored.position >= UInt64(log.size) {
                guard stored.position == UInt64(log.size) else { throw APIError(.internal, "the transparency log has a gap") }
                log.append(leafHash: stored.entry.leafHash)
                times.append(stored.entry.time)
            }
            if batch.count < 10_000 { return UInt64(log.size) }
        }
    }

    var size: UInt64 { UInt64(log.size) }

    /// The head of the log at `size` (its time: its last entry's), the
    /// same for every caller, so that witnesses' cosignatures apply to it.
    func head(size: UInt64, domain: NetworkDomain) -> TreeHead? {
        guard size <= UInt64(log.size), let root = log.root(size: Int(size)) else { return nil }
        return TreeHead(domain: domain, size: size, root: root, time: size == 0 ? 0 : times[Int(size) - 1])
    }

    func inclusionProof(index: UInt64, size: UInt64) -> [[UInt8]]? {
        guard size <= UInt64(log.size), index < size else { return nil }
        return log.inclusionProof(index: Int(index), size: Int(size))
    }

    func consistencyProof(from old: UInt64, to new: UInt64) -> [[UInt8]]? {
        guard old <= new, new <= UInt64(log.size) else { return nil }
        return log.consistencyProof(old: Int(old), new: Int(new))
    }
}

/// Key transparency on the server's side (docs/transparency.md): signed
/// heads of this network's log with inclusion and consistency proofs, the
/// peers' cosignatures of them, and the witnessing of the peers' logs.
final class TransparencyService: Sendable {
    let store: ConclaveStore
    let identity: NetworkIdentity
    let clock: ServerClock
    let directory: FederationDirectory
    let audit: AuditRecorder
    let client: FederationClient
    let logger: Logger
    let mirror: TransparencyLogMirror
    /// The size for which witnesses were last asked to cosign at once
    /// (asked once per size, not once per request).
    /// The log size the witnesses were last asked to cosign at once, and when.
    private let askedFor = Mutex<(size: UInt64, at: Date)?>(nil)
    /// How recent a cosignature must be for this server to prove against its
    /// head: clients count a day's (C9); the margin is for their clocks.
    static let cosignatureFreshness: TimeInterval = 20 * 3600
    /// How far ahead of this server's clock a witness's clock may run.
    static let cosignatureClockSkew: TimeInterval = 600
    /// How often the witnesses are asked at once for the same log size.
    static let witnessAskInterval: TimeInterval = 600

    /// Entries one page of `GET /v1/transparency/entries` holds at most.
    static let pageLimit = 1000
    /// Witness cosignatures an administrator may require at most.
    static let maximumQuorum = 16

    init(
        store: ConclaveStore, identity: NetworkIdentity, clock: ServerClock, directory: FederationDirectory, audit: AuditRecorder,
        logger: Logger
    ) {
        self.store = store
        self.identity = identity
        self.clock = clock
        self.directory = directory
        self.audit = audit
        self.client = FederationClient(identity: identity, clock: clock, logger: logger)
        self.logger = logger
        self.mirror = TransparencyLogMirror(store: store)
    }

    var domain: NetworkDomain { identity.domain }

    // MARK: Heads and proofs

    private func head(size: UInt64) async throws -> TreeHead {
        guard let head = await mirror.head(size: size, domain: domain) else { throw APIError(.internal, "no head of that size") }
        return head
    }

    func info(_ head: TreeHead, quorum given: Int? = nil) async throws -> TransparencyHeadInfo {
        let quorum: Int
        if let given { quorum = given } else { quorum = try await store.transparencyQuorum() }
        return TransparencyHeadInfo(
            try SignedTreeHead.sign(head, by: identity.key), witnesses: try await store.cosignatures(of: head), quorum: quorum)
    }

    /// The newest head, signed, with the cosignatures it has.
    func currentHead() async throws -> TransparencyHeadInfo {
        try await info(try await head(size: try await mirror.sync()))
    }

    /// The head to prove an entry at `position` against: the newest one
    /// when no cosignatures are required; else the newest with the quorum of
    /// recent cosignatures that holds the entry, the witnesses asked for one
    /// at once when there is none (at most every 10 minutes per log size; the
    /// newest head, which clients will refuse, when they give none).
    private func provingHead(covering position: UInt64) async throws -> (TreeHead, Int) {
        let size = try await mirror.sync()
        let quorum = try await store.transparencyQuorum()
        let newest = try await head(size: size)
        guard quorum > 0 else { return (newest, quorum) }
        if let head = try await cosignedHead(covering: position, quorum: quorum) { return (head, quorum) }
        let now = clock.now
        let ask = askedFor.withLock { asked in
            guard asked?.size != size || now.timeIntervalSince(asked?.at ?? .distantPast) >= Self.witnessAskInterval else { return false }
            asked = (size, now)
            return true
        }
        if ask { await requestWitnesses() }
        return (try await cosignedHead(covering: position, quorum: quorum) ?? newest, quorum)
    }

    private func cosignedHead(covering position: UInt64, quorum: Int) async throws -> TreeHead? {
        let since = clock.now.addingTimeInterval(-Self.cosignatureFreshness)
        guard let (head, _) = try await store.cosignedHead(atLeast: position + 1, quorum: quorum, cosignedSince: since),
            await mirror.head(size: head.size, domain: domain) == head
        else { return nil }
        return head
    }

    /// A user's newest entry with its inclusion proof (nil: no entry).
    func inclusion(of user: UserName) async throws -> TransparencyInclusion? {
        guard let stored = try await store.newestTransparencyEntry(of: user) else { return nil }
        let (head, quorum) = try await provingHead(covering: stored.position)
        guard let proof = await mirror.inclusionProof(index: stored.position, size: head.size) else { return nil }
        return TransparencyInclusion(
            entry: Base64Bytes(stored.entry.tlsSerialized), position: stored.position, proof: proof.map(Base64Bytes.init),
            head: try await info(head, quorum: quorum))
    }

    /// A consistency proof from `from` entries to `to` (0 < from ≤ to ≤ size).
    func consistency(from: UInt64, to: UInt64) async throws -> TransparencyConsistency {
        let size = try await mirror.sync()
        guard from > 0, from <= to, to <= size, let proof = await mirror.consistencyProof(from: from, to: to) else {
            throw APIError.badRequest("from and to are sizes of the log with 0 < from ≤ to ≤ \(size)")
        }
        return TransparencyConsistency(from: from, to: to, proof: proof.map(Base64Bytes.init))
    }

    /// Entries from `start`, at most `count` (1–1000).
    func entries(start: UInt64, count: Int) async throws -> TransparencyEntries {
        let size = try await mirror.sync()
        guard (1...Self.pageLimit).contains(count), start <= size else {
            throw APIError.badRequest("start is at most the log's size (\(size)) and count 1–\(Self.pageLimit)")
        }
        let stored = try await store.transparencyEntries(from: start, limit: count)
        return TransparencyEntries(start: start, entries: stored.map { Base64Bytes($0.entry.tlsSerialized) })
    }

    /// A consistency proof of a peer's log, asked of the peer for a client.
    func remoteConsistency(of network: NetworkDomain, from: UInt64, to: UInt64) async throws -> TransparencyConsistency {
        guard network != domain else { return try await consistency(from: from, to: to) }
        let peer = try await directory.peer(network)
        let answer = try await client.send(
            .POST, to: peer.peer, path: "/v1/federation/transparency/consistency",
            body: TransparencyConsistency(from: from, to: to, proof: []))
        let proof = try answer.decode(TransparencyConsistency.self, from: network)
        guard proof.from == from, proof.to == to else { throw APIError(.peerInvalid, "\(network) answered for other sizes") }
        return proof
    }

    // MARK: Serving witnesses

    /// A witness asks for the newest head, with a consistency proof from
    /// the last size it saw.
    func serveHead(_ request: FederatedHeadRequest) async throws -> FederatedHeadAnswer {
        let head = try await currentHead()
        // The proof ends at the head's own size: an entry appended meanwhile must not make an honest head look inconsistent.
        let size = try head.signed().head.size
        var proof: [Base64Bytes]?
        if let since = request.since, since > 0, since <= size, let path = await mirror.consistencyProof(from: since, to: size) {
            proof = path.map(Base64Bytes.init)
        }
        return FederatedHeadAnswer(head: head, consistency: proof)
    }

    /// A peer's cosignature of one of this network's heads: kept when the
    /// head is this log's as it is and the signature is the peer's.
    func acceptCosignature(_ delivery: CosignatureDelivery, from origin: NetworkDomain) async throws {
        guard delivery.cosignature.witness == origin else { throw APIError(.forbidden, "a network cosigns for itself only") }
        guard let head = try? TreeHead(tlsSerialized: delivery.head.bytes), head.domain == domain else {
            throw APIError.badRequest("not a head of this network's log")
        }
        try await mirror.sync()
        guard await mirror.head(size: head.size, domain: domain) == head else {
            throw APIError(.conflict, "this network's log has no such head")
        }
        guard delivery.cosignature.isValid(for: head, key: try await directory.peerKey(origin)) else {
            throw APIError.badRequest("the cosignature does not verify with \(origin)'s key")
        }
        // A time ahead of this server's clock would look recent here for ever (clients refuse it past an hour ahead).
        guard delivery.cosignature.date <= clock.now.addingTimeInterval(Self.cosignatureClockSkew) else {
            throw APIError.badRequest("the cosignature's time is ahead of this server's clock")
        }
        try await store.addCosignature(delivery.cosignature, of: head)
    }

    /// Asks every peer to witness this network's newest head now, keeping
    /// the cosignatures they give.
    func requestWitnesses() async {
        for peer in (try? await witnessablePeers()) ?? [] {
            do {
                let answer = try await client.send(.POST, to: peer.peer, path: "/v1/federation/transparency/witness", body: Empty())
                try await acceptCosignature(try answer.decode(CosignatureDelivery.self, from: peer.peer.domain), from: peer.peer.domain)
            } catch {
                logger.warning("transparency: a peer did not witness this network's head", metadata: ["peer": "\(peer.peer.domain)"])
            }
        }
    }

    // MARK: Witnessing peers

    private func witnessablePeers() async throws -> [StoredPeer] {
        guard try await store.federationMode() != .off else { return [] }
        return try await store.peers()
    }

    /// Fetches a peer's newest head, checks its signature and that it
    /// extends the last head of the peer this network saw, and cosigns it.
    /// A head that contradicts an earlier one is refused and both are kept
    /// as evidence.
    func witness(_ network: NetworkDomain) async throws -> CosignatureDelivery {
        do {
            let delivery = try await checkPeerHead(network)
            try await store.recordWitnessed(network, head: try delivery.signedHead(), problem: nil, at: clock.now)
            return delivery
        } catch let error as APIError {
            try? await store.recordWitnessed(network, head: nil, problem: error.message, at: clock.now)
            throw error
        }
    }

    private func checkPeerHead(_ network: NetworkDomain) async throws -> CosignatureDelivery {
        let peer = try await directory.peer(network)
        let key = try await directory.peerKey(network)
        let last = try await store.witnessed(network)?.head
        let answer = try await client.send(
            .POST, to: peer.peer, path: "/v1/federation/transparency/head", body: FederatedHeadRequest(since: last?.head.size)
        ).decode(FederatedHeadAnswer.self, from: network)
        guard let signed = try? answer.head.signed(), signed.head.domain == network, signed.isValid(for: key) else {
            throw APIError(.peerInvalid, "\(network)'s tree head does not verify with its key")
        }
        guard signed.head.size <= UInt64(Int.max) else { throw APIError(.peerInvalid, "\(network)'s tree head has an impossible size") }
        if let last {
            let reason: String?
            if signed.head.size == last.head.size {
                reason = signed.head.root == last.head.root ? nil : "two heads of the same size with different roots"
            } else if signed.head.size < last.head.size {
                reason = "a head smaller than one it showed before"
            } else {
                let proof = (answer.consistency ?? []).map(\.bytes)
                reason =
                    MerkleLog.verifyConsistency(
                        oldSize: Int(last.head.size), newSize: Int(signed.head.size), oldRoot: last.head.root, newRoot: signed.head.root,
                        proof: proof) ? nil : "a head that does not extend the one it showed before"
            }
            if let reason {
                let evidence = TransparencyEvidence(
                    network: network, reason: reason, first: TransparencyHeadInfo(last, witnesses: [], quorum: 0), second: answer.head,
                    foundAt: clock.now)
                // One record per contradiction: a peer that shows it again at every round adds nothing.
                let known = try await store.evidence().contains {
                    $0.network == network && $0.second.head == answer.head.head && $0.second.signature == answer.head.signature
                }
                if !known {
                    try await store.addEvidence(evidence)
                }
                logger.error(
                    "transparency: a peer showed contradicting tree heads", metadata: ["peer": "\(network)", "reason": "\(reason)"])
                throw APIError(.transparencySplitView, "\(network) showed \(reason); the evidence is kept")
            }
        }
        return CosignatureDelivery(
            head: Base64Bytes(signed.head.tlsSerialized), headSignature: Base64Bytes(signed.signature),
            cosignature: try WitnessCosignature.sign(signed.head, at: clock.now, by: identity.key))
    }

    /// Witnesses every peer and gives each its cosignature; what happened
    /// with each peer.
    @discardableResult
    func witnessAll() async throws -> [WitnessedPeer] {
        for peer in try await witnessablePeers() {
            let network = peer.peer.domain
            do {
                let delivery = try await witness(network)
                let answer = try await client.send(.POST, to: peer.peer, path: "/v1/federation/transparency/cosignature", body: delivery)
                _ = try answer.decode(Empty.self, from: network)
            } catch {
                logger.warning(
                    "transparency: witnessing a peer failed", metadata: ["peer": "\(network)", "error.type": "\(type(of: error))"])
            }
        }
        return try await witnessedPeers()
    }

    func witnessedPeers() async throws -> [WitnessedPeer] {
        let seen = Dictionary(try await store.allWitnessed().map { ($0.peer, $0) }) { first, _ in first }
        return try await store.peers().map { peer in
            let record = seen[peer.peer.domain]
            return WitnessedPeer(
                network: peer.peer.domain, size: record?.head?.head.size, checkedAt: record?.checkedAt, problem: record?.problem)
        }
    }

    // MARK: Administration

    func status() async throws -> TransparencyStatus {
        TransparencyStatus(head: try await currentHead(), peers: try await witnessedPeers(), evidence: try await store.evidence())
    }

    func setQuorum(_ settings: TransparencySettings, actor: String) async throws -> TransparencyStatus {
        guard (0...Self.maximumQuorum).contains(settings.quorum) else {
            throw APIError.badRequest("the quorum is 0 (no witnesses required) to \(Self.maximumQuorum)")
        }
        let before = try await store.transparencyQuorum()
        let draft = audit.draft("transparency.quorum", "network:\(domain)", before: before, after: settings.quorum, actor: actor)
        try await store.setTransparencyQuorum(settings.quorum, audit: draft)
        audit.appended(draft)
        return try await status()
    }

    struct Empty: Codable, Sendable {}
}

/// Witnesses the peers' logs every `interval` (and, through
/// ``TransparencyService/requestWitnesses()``, whenever a peer asks).
struct TransparencyWitnessing: Service {
    let transparency: TransparencyService
    let interval: Duration
    let ready: Gate
    let logger: Logger

    func run() async throws {
        await ready.wait()
        while !Task.isCancelledOrShuttingDown {
            do { try await transparency.witnessAll() } catch {
                logger.warning("transparency: a witnessing round failed", metadata: ["error.type": "\(type(of: error))"])
            }
            guard await Task.pause(for: interval) else { return }
        }
    }
}
