import ConclaveClient
import ConclaveProtocol
import ConclaveStorage
import ConclaveTestSupport
import Foundation
import Synchronization
import Testing

/// Key transparency on the server's side (issue 18, docs/transparency.md):
/// the log's entries as users publish, approve and lose devices, the
/// proofs the server gives, the refusals of bad requests, and a peer's
/// cosignatures.
@Suite(.serialized)
struct TransparencyServiceTests {
    static func head(_ http: RawHTTP) async throws -> SignedTreeHead {
        try await http.send(.GET, "/v1/transparency/head").decode(TransparencyHeadInfo.self).signed()
    }

    static func entries(_ http: RawHTTP) async throws -> [TransparencyEntry] {
        try await http.send(.GET, "/v1/transparency/entries?start=0&count=1000").decode(TransparencyEntries.self).entries.map {
            try TransparencyEntry(tlsSerialized: $0.bytes)
        }
    }

    @Test(
        "An entry per change of a user's identity key or approved devices; proofs that verify; bad requests refused",
        arguments: Backend.allCases)
    func logAndProofs(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            try await network.users("alice", "bob", "carol")
            let http = RawHTTP(baseURL: network.url)
            let key = network.networkKey.publicKey
            let empty = try await http.send(.GET, "/.well-known/conclave-transparency").decode(TransparencyHeadInfo.self)
            #expect(try empty.signed().head.size == 0 && empty.signed().isValid(for: key) && empty.quorum == 0)

            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let laptop = try await network.device("bob", "laptop", approvedBy: bob)
            let secret = try await network.store.database.read { connection in
                try #require(try await connection.query("SELECT secret FROM transparency_state", []).first).blob(0)
            }
            let index = TransparencyIndex(secret: secret)
            let aliceIndex = index.index(of: try #require(UserName("alice")))
            let bobIndex = index.index(of: try #require(UserName("bob")))

            // alice's identity (with her first device), bob's, then bob's laptop approved: three entries.
            var entries = try await Self.entries(http)
            #expect(entries.map(\.index) == [aliceIndex, bobIndex, bobIndex])
            #expect(entries.map(\.version) == [1, 1, 2])
            // Each names its user's identity key as the store holds it (published by the user's first device).
            let published = try await network.store.database.read { connection in
                try await connection.query("SELECT user_name, public_key FROM user_identities", []).map { (try $0.text(0), try $0.blob(1)) }
            }
            let identities = Dictionary(uniqueKeysWithValues: published)
            #expect(entries[0].identityKey == identities["alice"] && entries[1].identityKey == identities["bob"])
            #expect(entries[2].identityKey == identities["bob"] && identities["alice"] != identities["bob"])
            // The device commitment is of exactly the approved devices, as the user's devices list them.
            let bobDevices = try await network.admin.devices(try #require(UserName("bob"))).devices.map { device in
                (
                    device.deviceId,
                    try #require(try UnverifiedDeviceCertificate(tlsSerialized: device.certificate.bytes).verified(by: key)).signatureKey
                        .bytes
                )
            }
            #expect(bobDevices.count == 2 && entries[2].devices == TransparencyEntry.deviceCommitment(bobDevices))
            // No user name in the log.
            #expect(!entries.contains { String(decoding: $0.tlsSerialized, as: UTF8.self).contains("bob") })

            // carol's (raw) device publishes her key (an entry) and asks for bob's: it comes with a proof of his newest entry.
            let carol = try await RawDevice.login(network, user: "carol")
            let info = try await carol.http.send(.GET, "/v1/users/bob/identity", token: carol.token).decode(UserIdentityInfo.self)
            let inclusion = try #require(info.transparency)
            let head = try inclusion.head.signed()
            #expect(head.isValid(for: key) && head.head.size == 4 && inclusion.position == 2)
            #expect(try TransparencyEntry(tlsSerialized: inclusion.entry.bytes) == entries[2])
            #expect(entries[2].identityKey == info.identityKey.bytes)
            #expect(
                MerkleLog.verifyInclusion(
                    leafHash: entries[2].leafHash, index: 2, size: 4, proof: inclusion.proof.map(\.bytes), root: head.head.root))

            // bob removes his laptop; alice's account is deleted: her entry says she has no key any more.
            try await bob.removeDevice(try #require(await laptop.device))
            try await network.admin.delete(try #require(UserName("alice")))
            entries = try await Self.entries(http)
            let carolIndex = index.index(of: try #require(UserName("carol")))
            #expect(entries.count == 6 && entries[3].index == carolIndex)
            #expect(entries[4].index == bobIndex && entries[4].version == 3 && entries[4].devices == entries[1].devices)
            #expect(entries[5].index == aliceIndex && entries[5].version == 2 && entries[5].identityKey.isEmpty)
            #expect(await alice.device != nil)

            // A consistency proof between two sizes, checked against the roots the entries give.
            var local = MerkleLog()
            for entry in entries { local.append(leafHash: entry.leafHash) }
            let newest = try await Self.head(http)
            #expect(newest.head.root == local.root(size: 6))
            let consistency = try await http.send(.GET, "/v1/transparency/consistency?from=4&to=6").decode(TransparencyConsistency.self)
            #expect(
                MerkleLog.verifyConsistency(
                    oldSize: 4, newSize: 6, oldRoot: head.head.root, newRoot: newest.head.root, proof: consistency.proof.map(\.bytes)))

            // Sizes and pages out of range: 400 with a JSON error.
            for path in [
                "/v1/transparency/consistency?from=0&to=3", "/v1/transparency/consistency?from=4&to=3",
                "/v1/transparency/consistency?from=3&to=7", "/v1/transparency/consistency?from=x&to=3",
                "/v1/transparency/consistency", "/v1/transparency/entries?start=7", "/v1/transparency/entries?count=0",
                "/v1/transparency/entries?count=1001", "/v1/transparency/entries?start=-1",
            ] {
                http.expectRefusal(try await http.send(.GET, path), .badRequest)
            }
            #expect(try await http.send(.GET, "/v1/transparency/entries?start=6").decode(TransparencyEntries.self).entries.isEmpty)
            // A peer's proofs are relayed for signed-in devices only.
            http.expectRefusal(
                try await http.send(.GET, "/v1/networks/globex.example/transparency/consistency?from=1&to=2"), .unauthenticated)
            http.expectRefusal(
                try await carol.http.send(
                    .GET, "/v1/networks/globex.example/transparency/consistency?from=1&to=2", token: carol.token), .unknownNetwork)
        }
    }

    @Test("Started on a database changed by hand, the server logs what it serves; the witness quorum is the administrator's, audited")
    func reconcileAndQuorum() async throws {
        let root = NSTemporaryDirectory() + "conclave-reconcile-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try await TestNetwork.run(.sqlite) { network in
            try await network.users("bob")
            _ = try await network.device("bob")
            let http = RawHTTP(baseURL: network.url)
            #expect(try await Self.head(http).head.size == 1)
            // Someone with the database's access gives bob another key, bypassing the log.
            let fake = UserIdentityKey.generate()
            try await network.store.database.transaction { connection in
                try await connection.execute("UPDATE user_identities SET public_key = ?", [.blob(fake.publicKey.rawKey)])
            }
            // The server does not serve it as logged until it is in the log; at start, the store logs it.
            #expect(try await network.store.reconcileTransparency(at: Date()) == 1)
            #expect(try await network.store.reconcileTransparency(at: Date()) == 0)
            let entries = try await Self.entries(http)
            #expect(entries.map(\.version) == [1, 2] && entries[1].identityKey == fake.publicKey.rawKey)

            // The quorum: 0–16, set by the owner, audited, and told with every head.
            #expect(try await network.admin.setTransparencyQuorum(2).head.quorum == 2)
            await #expect(throws: ClientError.self) { _ = try await network.admin.setTransparencyQuorum(17) }
            await #expect(throws: ClientError.self) { _ = try await network.admin.setTransparencyQuorum(-1) }
            #expect(try await network.admin.audit().filter { $0.action == "transparency.quorum" }.count == 1)
            #expect(try await http.send(.GET, "/v1/transparency/head").decode(TransparencyHeadInfo.self).quorum == 2)
        }
    }

    @Test("A peer's cosignature is kept only for this log's own head, signed by that peer for itself")
    func cosignatures() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let peer = HostileNetwork(domain: try #require(NetworkDomain("globex.example")))
            let other = NetworkSigningKey.generate(domain: try #require(NetworkDomain("initech.example")))
            _ = try await network.admin.addPeer(peer.domain, url: peer.url, keyFingerprint: peer.fingerprint)
            try await network.users("alice")
            _ = try await network.device("alice")
            let http = RawHTTP(baseURL: network.url)
            let signed = try await Self.head(http)
            func delivery(_ head: TreeHead, by key: NetworkSigningKey, as witness: NetworkDomain? = nil) throws -> CosignatureDelivery {
                var cosignature = try WitnessCosignature.sign(head, at: Date(), by: key)
                if let witness { cosignature.witness = witness }
                return CosignatureDelivery(
                    head: Base64Bytes(head.tlsSerialized), headSignature: Base64Bytes(signed.signature), cosignature: cosignature)
            }
            let path = "/v1/federation/transparency/cosignature"
            // For another network; not a head of this log; signed by another key: refused, nothing kept.
            http.expectRefusal(
                try await peer.send(path, try delivery(signed.head, by: other, as: other.domain), to: network), .forbidden)
            var forged = signed.head
            forged.root = Array(repeating: 7, count: 32)
            http.expectRefusal(try await peer.send(path, try delivery(forged, by: peer.key), to: network), .conflict)
            forged = signed.head
            forged.size += 1
            http.expectRefusal(try await peer.send(path, try delivery(forged, by: peer.key), to: network), .conflict)
            http.expectRefusal(
                try await peer.send(path, try delivery(signed.head, by: other, as: peer.domain), to: network), .badRequest)
            http.expectRefusal(try await peer.send(path, Data("{}".utf8), to: network), .badRequest)
            // Unsigned: not a peer's request.
            #expect(try await http.send(.POST, path, json: try delivery(signed.head, by: peer.key)).status == 401)
            #expect(try await http.send(.GET, "/v1/transparency/head").decode(TransparencyHeadInfo.self).witnesses.isEmpty)

            // The peer's own cosignature of this head: kept and shown with it.
            #expect(try await peer.send(path, try delivery(signed.head, by: peer.key), to: network).status == 200)
            let info = try await http.send(.GET, "/v1/transparency/head").decode(TransparencyHeadInfo.self)
            #expect(info.witnesses.map(\.witness) == [peer.domain])
            #expect(info.witnesses.first?.isValid(for: signed.head, key: peer.key.publicKey) == true)
        }
    }

    @Test(
        "A peer's head of an impossible size, or smaller than one it showed, is refused by its witness, which goes on and keeps the evidence once"
    )
    func hostilePeerHeads() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let domain = try #require(NetworkDomain("globex.example"))
            // The peer's heads, one per witnessing round: an honest first one, one of size 2^63, then a smaller one (twice).
            let sizes = Mutex<[UInt64]>([3, UInt64(Int.max) + 1, 2, 2])
            let heads: @Sendable (UInt64?) -> TreeHead = { _ in
                let size = sizes.withLock { $0.count > 1 ? $0.removeFirst() : $0[0] }
                return TreeHead(domain: domain, size: size, root: Array(repeating: UInt8(truncatingIfNeeded: size), count: 32), time: 0)
            }
            try await HostileNetwork(domain: domain).servingIdentities(heads: heads) { peer in
                _ = try await network.admin.addPeer(peer.domain, url: peer.url, keyFingerprint: peer.fingerprint)
                let first = try await network.admin.witnessPeers()
                #expect(first.first?.size == 3 && first.first?.problem == nil)
                let huge = try await network.admin.witnessPeers()
                #expect(huge.first?.size == 3 && huge.first?.problem?.contains("impossible size") == true)
                #expect(try await network.admin.transparency().evidence.isEmpty)
                let smaller = try await network.admin.witnessPeers()
                #expect(smaller.first?.size == 3 && smaller.first?.problem?.contains("smaller than one it showed before") == true)
                _ = try await network.admin.witnessPeers()
                let evidence = try await network.admin.transparency().evidence
                #expect(evidence.count == 1)
                #expect(try evidence.first?.first.signed().head.size == 3 && evidence.first?.second.signed().head.size == 2)
            }
        }
    }
}
