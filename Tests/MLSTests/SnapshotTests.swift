import Crypto
import MLS
import MLSCodec
import Testing

@Suite("Group snapshots")
struct SnapshotTests {
    /// A one-member group built only from seeded randomness (suite 1 signs
    /// deterministically), so its snapshot bytes are fixed.
    static func deterministicGroup() throws -> Group {
        let client = try Client("pinned", seed: 7)
        let random = SeededRandom(seed: 8)
        let bundle = try KeyPackageBundle.create(
            client.provider, credential: client.credential, signer: client.signer, lifetime: Lifetime(notBefore: 0, notAfter: 1 << 40),
            random: random)
        return try Group(creating: [0xC0, 0x4C, 0x1A, 0x5E], creator: bundle, random: random)
    }

    /// Pins format version 1: if this hash changes, the format changed, and
    /// the version and a migration must change with it.
    @Test func theFormatIsPinned() throws {
        let snapshot = try Self.deterministicGroup().snapshot()
        #expect(Array(snapshot.prefix(2)) == [0x00, 0x01])
        let digest = SHA256.hash(data: snapshot).map { String(format: "%02x", $0) }.joined()
        #expect(digest == "5246b1630cfe18cfe98ea520f435c92da65fe362497b73a3f2bec80141d9c855")
    }

    @Test func aRestoredGroupCarriesOn() throws {
        let alice = try Client("alice", seed: 1)
        let bob = try Client("bob", seed: 2)
        let carol = try Client("carol", seed: 3)
        var aliceGroup = try Group(creating: [9], creator: try alice.keyPackage(), random: alice.random)
        let bobPackage = try bob.keyPackage()
        let carolPackage = try carol.keyPackage()
        let output = try aliceGroup.commit(adding: [bobPackage.keyPackage, carolPackage.keyPackage], now: testNow, random: alice.random)
        try aliceGroup.mergePendingCommit()
        var bobGroup = try Group(welcome: try #require(output.welcome), keyPackage: bobPackage, now: testNow)
        var carolGroup = try Group(welcome: try #require(output.welcome), keyPackage: carolPackage, now: testNow)
        // Some ratchet state worth keeping: an out-of-order message.
        let first = try aliceGroup.encrypt(Array("one".utf8), random: alice.random)
        let second = try aliceGroup.encrypt(Array("two".utf8), random: alice.random)
        _ = try bobGroup.process(second, now: testNow)

        let snapshot = bobGroup.snapshot()
        var restored = try Group(snapshot: snapshot)
        #expect(restored.snapshot() == snapshot)
        #expect(restored.epochAuthenticator == bobGroup.epochAuthenticator)
        guard case .application(let late) = try restored.process(first, now: testNow) else {
            Issue.record("not application")
            return
        }
        #expect(late.data == Array("one".utf8))
        #expect(throws: MLSError.self) { try restored.process(second, now: testNow) }

        let update = try carolGroup.commit(forcePath: true, now: testNow, random: carol.random)
        try carolGroup.mergePendingCommit()
        _ = try restored.process(update.commit, now: testNow)
        _ = try aliceGroup.process(update.commit, now: testNow)
        #expect(restored.epochAuthenticator == carolGroup.epochAuthenticator)
        let reply = try restored.encrypt(Array("back".utf8), random: bob.random)
        guard case .application(let received) = try aliceGroup.process(reply, now: testNow) else {
            Issue.record("not application")
            return
        }
        #expect(received.data == Array("back".utf8))
    }

    @Test func aPendingUpdateSurvivesARestart() throws {
        let alice = try Client("alice", seed: 21)
        let bob = try Client("bob", seed: 22)
        var aliceGroup = try Group(creating: [5], creator: try alice.keyPackage(), random: alice.random)
        let bobPackage = try bob.keyPackage()
        let output = try aliceGroup.commit(adding: [bobPackage.keyPackage], now: testNow, random: alice.random)
        try aliceGroup.mergePendingCommit()
        var bobGroup = try Group(welcome: try #require(output.welcome), keyPackage: bobPackage, now: testNow)
        let update = try bobGroup.proposeUpdate(random: bob.random)
        var restored = try Group(snapshot: bobGroup.snapshot())
        _ = try aliceGroup.process(update, now: testNow)
        let commit = try aliceGroup.commit(now: testNow, random: alice.random)
        try aliceGroup.mergePendingCommit()
        _ = try restored.process(commit.commit, now: testNow)
        #expect(restored.epochAuthenticator == aliceGroup.epochAuthenticator)
        let path = try aliceGroup.commit(forcePath: true, now: testNow, random: alice.random)
        try aliceGroup.mergePendingCommit()
        _ = try restored.process(path.commit, now: testNow)
        #expect(restored.epochAuthenticator == aliceGroup.epochAuthenticator)
    }

    @Test func damagedSnapshotsAreRefused() throws {
        let snapshot = try Self.deterministicGroup().snapshot()
        for length in [0, 1, 2, snapshot.count / 2, snapshot.count - 1] {
            #expect(throws: MLSError.self) { try Group(snapshot: Array(snapshot.prefix(length))) }
        }
        var otherVersion = snapshot
        otherVersion[1] = 2
        #expect(throws: MLSError(.malformed, "", "")) { try Group(snapshot: otherVersion) }
        #expect(throws: MLSError.self) { try Group(snapshot: snapshot + [0]) }
        // Flip every byte in turn: never a trap, always a typed error or an equal re-encoding.
        for index in snapshot.indices {
            var mutated = snapshot
            mutated[index] ^= 0x55
            if let group = try? Group(snapshot: mutated) {
                let canonical = group.snapshot() == mutated
                #expect(canonical, "byte \(index) decoded to a different snapshot")
            }
        }
    }
}
