import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import MLS
import MLSCodec
import Testing

/// A modified client that bypasses the SDK: each numbered rule of
/// docs/server.md refuses its request with a JSON error and no state change.
@Suite(.serialized)
struct ModifiedClientTests {
    @Test("Authentication, key package and Delivery Service rules", arguments: Backend.allCases)
    func rules(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            try await network.users("alice", "bob", "carol")
            let alice = try await RawDevice.login(network, user: "alice")
            let bob = try await RawDevice.login(network, user: "bob")
            let http = alice.http

            // A4: a signature key that does not fit the suite. A5: a key another device holds.
            let shortKey = LoginRequest(
                user: "carol", password: network.password, deviceName: "x", signatureKey: Base64Bytes([1, 2, 3]), cipherSuite: 1)
            http.expectRefusal(try await http.send(.POST, "/v1/login", json: shortKey), .badRequest)
            let stolenKey = LoginRequest(
                user: "carol", password: network.password, deviceName: "x", signatureKey: Base64Bytes(alice.signer.publicKey.bytes),
                cipherSuite: 1)
            http.expectRefusal(try await http.send(.POST, "/v1/login", json: stolenKey), .keyInUse)

            // K1: too many at once. K2: a key package of another device, or with a self-made certificate.
            #expect(try await alice.upload([try alice.keyPackage(), try alice.keyPackage()]).status == 200)
            http.expectRefusal(try await alice.upload(try (0..<101).map { _ in try alice.keyPackage() }), .badRequest)
            http.expectRefusal(try await alice.upload([try bob.keyPackage()]), .invalidKeyPackage)
            let fakeNetwork = NetworkSigningKey.generate(domain: try #require(NetworkDomain("acme.example")))
            let forgedCertificate = try VerifiedDeviceCertificate.issue(
                user: alice.certificate.user, device: alice.certificate.device, signatureKey: alice.signer.publicKey,
                cipherSuite: .x25519Aes128Sha256Ed25519,
                issuedAt: alice.now, by: fakeNetwork)
            http.expectRefusal(
                try await alice.upload([try alice.keyPackage(credential: forgedCertificate.credential)]), .invalidKeyPackage)
            #expect(try await bob.upload([try bob.keyPackage(), try bob.keyPackage()]).status == 200)

            // D1: not epoch 0. D3: a creator that is not this device. D4: no external sender.
            var advanced = try alice.newGroup()
            _ = try advanced.commit(forcePath: true, now: validationNow, random: alice.random)
            try advanced.mergePendingCommit()
            http.expectRefusal(try await alice.create(advanced), .invalidMLSMessage)
            http.expectRefusal(try await bob.create(try alice.newGroup()), .forbidden)
            http.expectRefusal(try await alice.create(try alice.newGroup(extensions: [])), .missingExternalSender)

            // D18: malformed or out-of-range conversation settings.
            let malformed = Extension(type: ConversationSettings.extensionType, data: [1, 2, 3])
            http.expectRefusal(
                try await alice.create(try alice.newGroup(extensions: [alice.externalSenders, malformed])), .invalidSettings)
            let tooLong = ConversationSettings(messageLifetime: ConversationSettings.maximumSeconds + 1).extension
            http.expectRefusal(
                try await alice.create(try alice.newGroup(extensions: [alice.externalSenders, tooLong])), .invalidSettings)

            // A room created properly, with bob added.
            var room = try alice.newGroup()
            let roomID = try #require(ConversationID(bytes: room.groupID))
            #expect(try await alice.create(room).status == 201)
            let bobPackages = try await alice.claim(bob.certificate.user)
            #expect(bobPackages.count == 1)

            // D14: an Add without its Welcome. D13: a GroupInfo of the old epoch.
            http.expectRefusal(
                try await alice.send(
                    try room.commit(adding: bobPackages, now: validationNow, random: alice.random), on: &room, id: roomID, welcome: false),
                .invalidMLSMessage
            )
            let stale = try room.groupInfo(includeTree: false)
            http.expectRefusal(
                try await alice.send(
                    try room.commit(adding: bobPackages, now: validationNow, random: alice.random), on: &room, id: roomID, groupInfo: stale),
                .invalidMLSMessage)
            // D12: a leaf whose certificate is not from this network.
            let impostor = try alice.provider.generateSignatureKey(random: alice.random)
            let impostorCertificate = try VerifiedDeviceCertificate.issue(
                user: bob.certificate.user, device: bob.certificate.device, signatureKey: impostor.publicKey,
                cipherSuite: .x25519Aes128Sha256Ed25519,
                issuedAt: alice.now, by: fakeNetwork)
            let impostorPackage = try alice.keyPackage(credential: impostorCertificate.credential, signer: impostor).keyPackage
            http.expectRefusal(
                try await alice.send(
                    try room.commit(adding: [impostorPackage], now: validationNow, random: alice.random), on: &room, id: roomID),
                .invalidCredential)
            #expect(room.epoch == 0)
            #expect(
                try await alice.send(try room.commit(adding: bobPackages, now: validationNow, random: alice.random), on: &room, id: roomID)
                    .status == 201)

            // D7: a commit that is not a PublicMessage. D15: application data that is not a PrivateMessage.
            let application = try room.encrypt(Array("hello".utf8), random: alice.random)
            let notACommit = CommitRequest(
                commit: Base64Bytes(application.tlsSerialized), welcome: nil,
                groupInfo: Base64Bytes(try room.groupInfo(includeTree: false).tlsSerialized))
            http.expectRefusal(
                try await http.send(.POST, "/v1/conversations/\(roomID)/commits", token: alice.token, json: notACommit), .invalidMLSMessage)
            let proposal = try room.proposeUpdate(random: alice.random)
            let cleartext = SendMessage(messageId: "clear-1", message: Base64Bytes(proposal.tlsSerialized))
            http.expectRefusal(
                try await http.send(.POST, "/v1/conversations/\(roomID)/messages", token: alice.token, json: cleartext), .invalidMLSMessage)

            // D17: a retried message id is stored and delivered once.
            let once = SendMessage(messageId: "retry-1", message: Base64Bytes(application.tlsSerialized))
            #expect(try await http.send(.POST, "/v1/conversations/\(roomID)/messages", token: alice.token, json: once).status == 201)
            #expect(try await http.send(.POST, "/v1/conversations/\(roomID)/messages", token: alice.token, json: once).status == 200)
            let bobInbox = try await http.send(.GET, "/v1/inbox", token: bob.token).decode(InboxPage.self)
            #expect(bobInbox.events.filter { $0.messageId == "retry-1" }.count == 1)

            // D16: a device outside the conversation may not post to it.
            let carol = try await RawDevice.login(network, user: "carol")
            http.expectRefusal(
                try await http.send(.POST, "/v1/conversations/\(roomID)/messages", token: carol.token, json: once), .notFound)

            // D5: one 1:1 conversation per pair.
            #expect(try await alice.create(try alice.newGroup(), kind: .direct, name: nil, peer: bob.certificate.user).status == 201)
            let second = try await alice.create(try alice.newGroup(), kind: .direct, name: nil, peer: bob.certificate.user)
            http.expectRefusal(second, .conversationExists)
            #expect(second.error?.conversation != nil)

            // D11: bob leaves; until a commit carries the server's Remove, no new messages, and a commit without it is refused.
            #expect(try await http.send(.POST, "/v1/conversations/\(roomID)/leave", token: bob.token).status == 202)
            let blocked = SendMessage(
                messageId: "blocked-1", message: Base64Bytes(try room.encrypt(Array("x".utf8), random: alice.random).tlsSerialized))
            http.expectRefusal(
                try await http.send(.POST, "/v1/conversations/\(roomID)/messages", token: alice.token, json: blocked), .pendingProposals)
            http.expectRefusal(
                try await alice.send(
                    try room.commit(includePending: false, forcePath: true, now: validationNow, random: alice.random), on: &room, id: roomID
                ),
                .pendingProposals)
            // Alice reads the server's proposal from her inbox and commits it: then sending works again.
            let aliceInbox = try await http.send(.GET, "/v1/inbox", token: alice.token).decode(InboxPage.self)
            for event in aliceInbox.events where event.conversation == roomID && event.kind == .handshake {
                _ = try room.process(try MLSMessage(tlsSerialized: event.message.bytes), now: validationNow)
            }
            #expect(
                try await alice.send(try room.commit(includePending: true, now: validationNow, random: alice.random), on: &room, id: roomID)
                    .status == 201)
            #expect(room.members.count == 1)
            let unblocked = SendMessage(
                messageId: "after-1", message: Base64Bytes(try room.encrypt(Array("y".utf8), random: alice.random).tlsSerialized))
            #expect(try await http.send(.POST, "/v1/conversations/\(roomID)/messages", token: alice.token, json: unblocked).status == 201)
        }
    }
}
