@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveServer
import ConclaveTestSupport
import Foundation
import MLS
import Testing

/// Federation (issue 6), as far as it is built: peers pinned by key
/// fingerprint, signed server-to-server requests, and claiming a remote
/// user's key packages under both networks' policies. Real server
/// processes on loopback, one per network.
@Suite(.serialized)
struct FederationTests {
    static let acme = NetworkDomain("acme.example")!  // literals of the test
    static let globex = NetworkDomain("globex.example")!
    static let initech = NetworkDomain("initech.example")!

    @Test("Two networks pin each other; alice@acme claims bob@globex's key packages under both policies", arguments: Backend.allCases)
    func peeringAndClaim(_ backend: Backend) async throws {
        guard let acme = try await TestNetwork.start(backend, domain: "acme.example"),
            let globex = try await TestNetwork.start(backend == .sqlite ? .postgres : .sqlite, domain: "globex.example")
        else { return }
        defer {
            acme.stop()
            globex.stop()
        }
        let acmeKey = try await acme.admin.network().keyFingerprint
        let globexKey = try await globex.admin.network().keyFingerprint
        #expect(try await acme.admin.federation().mode == .listed)
        // A fingerprint that is not the key the peer publishes is refused at once.
        await PolicyTests.expectRefused("peer_mismatch") {
            _ = try await acme.admin.addPeer(Self.globex, url: globex.url, keyFingerprint: acmeKey)
        }
        await PolicyTests.expectRefused("bad_request") {
            _ = try await acme.admin.addPeer(Self.globex, url: "ftp://globex.example", keyFingerprint: globexKey)
        }
        _ = try await acme.admin.addPeer(Self.globex, url: globex.url, keyFingerprint: globexKey)
        _ = try await globex.admin.addPeer(Self.acme, url: acme.url, keyFingerprint: acmeKey)
        await PolicyTests.expectRefused("peer_exists") {
            _ = try await acme.admin.addPeer(Self.globex, url: globex.url, keyFingerprint: globexKey)
        }
        #expect(try await acme.admin.federation().peers.map(\.domain) == [Self.globex])
        #expect(try await acme.admin.audit().map(\.action) == ["federation.add"])

        try await acme.users("alice")
        try await globex.users("bob")
        let alice = try await acme.device("alice")
        _ = try await globex.device("bob")
        let http = RawHTTP(baseURL: acme.url)
        let token = try #require(await alice.sessionTokenForTesting)
        let bob = UserAddress(name: try #require(UserName("bob")), domain: Self.globex)
        func claim() async throws -> RawHTTP.Answer {
            try await http.send(.POST, "/v1/key-packages/claim", token: token, json: KeyPackageClaim(user: bob))
        }

        // The claim crosses, signed by acme; the certificates verify with globex's key only.
        let claimed = try await claim().decode(ClaimedKeyPackages.self)
        #expect(claimed.user == bob)
        #expect(claimed.keyPackages.count == 1)
        let peer = try await http.send(.GET, "/v1/networks/globex.example", token: token).decode(PeerNetwork.self)
        #expect(peer.keyFingerprint == globexKey)
        let globexPublic = NetworkPublicKey(domain: Self.globex, rawKey: peer.signingKey.bytes)
        let acmePublic = NetworkPublicKey(domain: Self.acme, rawKey: try await RawDevice.login(acme, user: "alice").networkKey.rawKey)
        for entry in claimed.keyPackages {
            guard case .keyPackage(let package) = try MLSMessage(tlsSerialized: entry.keyPackage.bytes).body else {
                Issue.record("not a KeyPackage")
                continue
            }
            #expect(DeviceCertificate.verify(leaf: package.leafNode, networkKey: globexPublic)?.user == bob)
            #expect(DeviceCertificate.verify(leaf: package.leafNode, networkKey: acmePublic) == nil)
        }

        // The sending side's policy: alice's group may not reach globex.
        _ = try await acme.admin.updateGroup(.default, SecurityGroupChange(federation: .noNetworks))
        var refused = try await claim()
        http.expectRefusal(refused, 403, code: "policy_federation")
        _ = try await acme.admin.updateGroup(.default, SecurityGroupChange(federation: .only([Self.globex])))
        #expect(try await claim().status == 200)
        // The receiving side refuses on its own: bob's group may only reach initech.
        _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(federation: .only([Self.initech])))
        refused = try await claim()
        http.expectRefusal(refused, 403, code: "policy_federation")
        #expect(refused.error?.message.hasPrefix("globex.example refused") == true)
        _ = try await globex.admin.updateGroup(.default, SecurityGroupChange(federation: .all))
        // A network that no longer lists acme, or no longer federates, refuses it.
        _ = try await globex.admin.setFederationMode(.off)
        http.expectRefusal(try await claim(), 403, code: "federation_off")
        _ = try await globex.admin.setFederationMode(.listed)
        try await globex.admin.removePeer(Self.acme)
        http.expectRefusal(try await claim(), 403, code: "unknown_network")
        // An unknown network is named as such, and one peer's downtime is a clear 502.
        _ = try await acme.admin.updateGroup(.default, SecurityGroupChange(federation: .all))
        http.expectRefusal(
            try await http.send(
                .POST, "/v1/key-packages/claim", token: token,
                json: KeyPackageClaim(user: UserAddress(name: bob.name, domain: Self.initech))), 404, code: "unknown_network")
        #expect(
            try await globex.admin.audit().map(\.action) == [
                "federation.add", "user.create", "group.update", "group.update", "federation.mode", "federation.mode", "federation.remove",
            ])
        globex.stop()
        http.expectRefusal(try await claim(), 502, code: "peer_unavailable")
    }

    @Test(
        "Signed server-to-server requests: unlisted, forged, tampered, stale and replayed requests change nothing",
        arguments: [Backend.sqlite])
    func hostileRequests(_ backend: Backend) async throws {
        guard let network = try await TestNetwork.start(backend, domain: "globex.example") else { return }
        defer { network.stop() }
        try await network.users("bob")
        _ = try await network.device("bob")
        // acme's key is held by the test; acme's server is not running, so globex learns the key on first contact.
        let acmeKey = NetworkSigningKey.generate(domain: Self.acme)
        let pinned = try await network.admin.addPeer(Self.acme, url: "http://127.0.0.1:9", keyFingerprint: acmeKey.publicKey.fingerprint)
        #expect(pinned.pinnedBy == "admin")
        let http = RawHTTP(baseURL: network.url)
        let path = "/v1/federation/key-packages/claim"
        func request(
            from origin: NetworkDomain = Self.acme, key: NetworkSigningKey, to destination: NetworkDomain = Self.globex,
            requester: String = "alice@acme.example", at time: Date = Date(), nonce: String = FederationRequestSignature.newNonce()
        ) throws -> (body: [UInt8], headers: [(String, String)]) {
            let requester = try #require(UserAddress(requester))
            let body = Array(
                try ConclaveJSON.encoder().encode(FederatedKeyPackageClaim(user: try #require(UserName("bob")), requester: requester)))
            let signature = FederationRequestSignature(
                method: "POST", path: path, body: body, timestamp: time.millis, nonce: nonce, origin: origin,
                originURL: "http://127.0.0.1:9", destination: destination)
            return (body, try signature.headers(signedBy: key))
        }
        func send(_ request: (body: [UInt8], headers: [(String, String)])) async throws -> RawHTTP.Answer {
            try await http.send(.POST, path, raw: request.body, headers: request.headers)
        }
        func count() async throws -> Int { try await network.admin.users().first?.devices ?? -1 }

        let valid = try request(key: acmeKey)
        let answer = try await send(valid)
        #expect(answer.status == 200)
        #expect(try answer.decode(ClaimedKeyPackages.self).keyPackages.count == 1)
        // Replayed: the same signed request again.
        http.expectRefusal(try await send(valid), 401, code: "replayed_request")
        // Stale: signed ten minutes ago.
        http.expectRefusal(try await send(try request(key: acmeKey, at: Date().addingTimeInterval(-600))), 401, code: "stale_request")
        // Forged: another key claiming to be acme.
        let mallory = NetworkSigningKey.generate(domain: Self.acme)
        http.expectRefusal(try await send(try request(key: mallory)), 401, code: "invalid_request_signature")
        // Tampered: a signed request whose body was changed on the way.
        var tampered = try request(key: acmeKey)
        tampered.body = Array(
            try ConclaveJSON.encoder().encode(
                FederatedKeyPackageClaim(user: try #require(UserName("bob")), requester: try #require(UserAddress("eve@acme.example")))))
        http.expectRefusal(try await send(tampered), 401, code: "invalid_request_signature")
        // Addressed to another network, and missing headers.
        http.expectRefusal(try await send(try request(key: acmeKey, to: Self.initech)), 401, code: "invalid_request_signature")
        http.expectRefusal(try await http.send(.POST, path, json: ["user": "bob"]), 401, code: "invalid_request_signature")
        // A network acting for another network's user.
        http.expectRefusal(try await send(try request(key: acmeKey, requester: "carol@initech.example")), 403, code: "forbidden")
        // Unlisted in listed mode: refused, nothing pinned.
        let initechKey = NetworkSigningKey.generate(domain: Self.initech)
        http.expectRefusal(
            try await send(try request(from: Self.initech, key: initechKey, requester: "carol@initech.example")), 403,
            code: "unknown_network")
        #expect(try await network.admin.federation().peers.map(\.domain) == [Self.acme])
        // Open mode: pinned on first use; another key for it afterwards is refused.
        _ = try await network.admin.setFederationMode(.open)
        #expect(try await send(try request(from: Self.initech, key: initechKey, requester: "carol@initech.example")).status == 200)
        let peers = try await network.admin.federation().peers
        #expect(peers.map(\.domain) == [Self.acme, Self.initech])
        #expect(peers.last?.pinnedBy == "first-use")
        #expect(peers.last?.keyFingerprint == initechKey.publicKey.fingerprint)
        let impostor = NetworkSigningKey.generate(domain: Self.initech)
        http.expectRefusal(
            try await send(try request(from: Self.initech, key: impostor, requester: "carol@initech.example")), 401,
            code: "invalid_request_signature")
        #expect(try await count() == 1)
    }
}
