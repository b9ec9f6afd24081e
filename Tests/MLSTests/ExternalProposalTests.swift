import MLS
import MLSCodec
import Testing

@Suite("External proposals (RFC 9420 §12.1.8)")
struct ExternalProposalTests {
    /// A network server listed in `external_senders` removes a member; a
    /// member commits the proposal and everyone, the server's view included, agrees.
    @Test func anExternalSenderRemovesAMember() throws {
        let alice = try Client("alice", seed: 41)
        let bob = try Client("bob", seed: 42)
        let carol = try Client("carol", seed: 43)
        let server = try Client("server", seed: 44)
        let senders = ExternalSendersList([ExternalSender(signatureKey: server.signer.publicKey, credential: server.credential)])
        var creator = try Group(
            creating: [8], creator: try alice.keyPackage(), extensions: [Extension(type: .externalSenders, data: senders.tlsSerialized)],
            random: alice.random)
        let bobPackage = try bob.keyPackage()
        let carolPackage = try carol.keyPackage()
        let added = try creator.commit(adding: [bobPackage.keyPackage, carolPackage.keyPackage], now: testNow, random: alice.random)
        try creator.mergePendingCommit()
        let welcome = try #require(added.welcome)
        var groups = [
            creator, try Group(welcome: welcome, keyPackage: bobPackage, now: testNow),
            try Group(welcome: welcome, keyPackage: carolPackage, now: testNow),
        ]
        var view = try PublicGroup(groupInfo: try groups[0].groupInfo(), now: testNow)

        let removal = try view.externalProposal(.remove(groups[2].ownLeaf), senderIndex: 0, signer: server.signer)
        guard case .publicMessage(let removalMessage) = removal.body else {
            Issue.record("not public")
            return
        }
        _ = try view.process(removalMessage, now: testNow)
        for index in groups.indices { _ = try groups[index].process(removal, now: testNow) }
        // Bob also asks to remove carol: her leaf is removed once, by the server's proposal (§12.2).
        let commit = try groups[1].commit(removing: [groups[2].ownLeaf], now: testNow, random: bob.random)
        try groups[1].mergePendingCommit()
        _ = try groups[0].process(commit.commit, now: testNow)
        guard case .commit(let summary) = try groups[2].process(commit.commit, now: testNow) else {
            Issue.record("not a commit")
            return
        }
        #expect(summary.removedSelf)
        guard case .publicMessage(let commitMessage) = commit.commit.body else {
            Issue.record("not public")
            return
        }
        _ = try view.process(commitMessage, now: testNow)
        #expect(groups[0].epochAuthenticator == groups[1].epochAuthenticator)
        #expect(view.context == groups[0].context)
        #expect(groups[0].members.count == 2)

        // Someone not listed cannot send as the external sender, nor forge the signature.
        #expect(throws: MLSError(.invalidSender, "", "")) {
            try view.externalProposal(.remove(groups[1].ownLeaf), senderIndex: 0, signer: carol.signer)
        }
        // An external sender may not propose an Update.
        #expect(throws: MLSError.self) {
            try view.externalProposal(.update(try #require(groups[1].ownLeafNode)), senderIndex: 0, signer: server.signer)
        }
    }

    @Test func aNewMemberProposesToJoin() throws {
        let alice = try Client("alice", seed: 51)
        let dave = try Client("dave", seed: 52)
        var group = try Group(creating: [6], creator: try alice.keyPackage(), random: alice.random)
        let view = try PublicGroup(groupInfo: try group.groupInfo(), now: testNow)
        let bundle = try dave.keyPackage()
        let proposal = try view.newMemberAddProposal(bundle)
        guard case .proposal(.add, .newMemberProposal) = try group.process(proposal, now: testNow) else {
            Issue.record("not a new-member Add")
            return
        }
        let output = try group.commit(now: testNow, random: alice.random)
        try group.mergePendingCommit()
        let joined = try Group(welcome: try #require(output.welcome), keyPackage: bundle, now: testNow)
        #expect(joined.epochAuthenticator == group.epochAuthenticator)
    }
}
