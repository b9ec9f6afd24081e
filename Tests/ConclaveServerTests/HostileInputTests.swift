@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import MLS
import MLSCodec
import Testing

/// Every hostile request gets a 4xx with a JSON error body and changes
/// nothing (docs/server.md, rules A, K and D).
@Suite(.serialized)
struct HostileInputTests {
    @Test("Unauthenticated, malformed, oversized, forged, replayed and wrong-epoch requests are refused", arguments: Backend.allCases)
    func refusals(_ backend: Backend) async throws {
        try await TestNetwork.run(backend, testClock: true) { network in  // the sign-in backoff below must not run out while the test runs
            try await network.users("alice", "bob", "mallory")
            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let mallory = try await network.device("mallory")
            let room = try await alice.createRoom(name: "secret", members: [network.address("bob")])
            _ = try await bob.receive()
            let http = RawHTTP(baseURL: network.url)
            let malloryToken = try #require(await mallory.sessionTokenForTesting)
            let aliceToken = try #require(await alice.sessionTokenForTesting)
            let before = try await http.send(.GET, "/v1/conversations/\(room.id)", token: aliceToken).decode(ConversationInfo.self)

            // Unauthenticated and bad tokens.
            http.expectRefusal(try await http.send(.GET, "/v1/conversations"), .unauthenticated)
            http.expectRefusal(try await http.send(.GET, "/v1/inbox", token: "not-a-token"), .unauthenticated)
            http.expectRefusal(try await http.send(.GET, "/v1/admin/users", token: aliceToken), .unauthenticated)
            // Malformed and oversized bodies, unknown routes.
            http.expectRefusal(try await http.send(.POST, "/v1/login", raw: Array("{not json".utf8)), .badRequest)
            // Just over the 1 MiB limit: small enough for the sockets to take whole, so the 413 is read before the server
            // closes (2 MiB was reset mid-send under load now and then).
            http.expectRefusal(
                try await http.send(.POST, "/v1/conversations", token: aliceToken, raw: Array(repeating: 0x20, count: (1 << 20) + 4096)),
                .tooLarge)
            http.expectRefusal(try await http.send(.GET, "/v1/nothing-here", token: aliceToken), .notFound)
            http.expectRefusal(try await http.send(.GET, "/v1/inbox?after=-5", token: aliceToken), .badRequest)
            // Not MLS at all, and the wrong wire format.
            let garbage = SendMessage(messageId: "m1", message: Base64Bytes([0, 1, 2, 3]))
            http.expectRefusal(
                try await http.send(.POST, "/v1/conversations/\(room.id)/messages", token: aliceToken, json: garbage), .invalidMLSMessage)

            // An outsider learns nothing of the conversation and cannot post to it.
            http.expectRefusal(try await http.send(.GET, "/v1/conversations/\(room.id)", token: malloryToken), .notFound)
            http.expectRefusal(try await http.send(.GET, "/v1/conversations/\(room.id)/group-info", token: malloryToken), .notFound)

            // A commit forged by flipping a byte of its signature, and a replay of an accepted one.
            let capture = try await alice.captureNextCommitForTesting(room.id)
            guard case .publicMessage(var tampered) = try MLSMessage(tlsSerialized: capture.commit.bytes).body else {
                Issue.record("the captured commit is not a PublicMessage")
                return
            }
            tampered.auth.signature[0] ^= 0x01
            let forged = MLSMessage(body: .publicMessage(tampered)).tlsSerialized
            let forgedRequest = CommitRequest(commit: Base64Bytes(forged), welcome: nil, groupInfo: capture.groupInfo)
            let forgedAnswer = try await http.send(.POST, "/v1/conversations/\(room.id)/commits", token: aliceToken, json: forgedRequest)
            #expect([400, 403].contains(forgedAnswer.status))
            #expect(forgedAnswer.error != nil)
            // Mallory submitting alice's genuine commit: a device may only act as itself.
            let stolen = CommitRequest(commit: capture.commit, welcome: nil, groupInfo: capture.groupInfo)
            let stolenAnswer = try await http.send(.POST, "/v1/conversations/\(room.id)/commits", token: malloryToken, json: stolen)
            #expect([403, 404].contains(stolenAnswer.status))
            let after = try await http.send(.GET, "/v1/conversations/\(room.id)", token: aliceToken).decode(ConversationInfo.self)
            #expect(after.epoch == before.epoch, "a refused commit changed the epoch")

            // The genuine commit goes through once; replaying it is a wrong epoch.
            let accepted = try await http.send(.POST, "/v1/conversations/\(room.id)/commits", token: aliceToken, json: stolen)
            #expect(accepted.status == 201)
            let replay = try await http.send(.POST, "/v1/conversations/\(room.id)/commits", token: aliceToken, json: stolen)
            http.expectRefusal(replay, .wrongEpoch)
            #expect(replay.error?.currentEpoch == before.epoch + 1)

            // A user may only read its own inbox: mallory's inbox holds nothing of the room.
            let inbox = try await http.send(.GET, "/v1/inbox", token: malloryToken).decode(InboxPage.self)
            #expect(inbox.events.allSatisfy { $0.conversation != room.id })
            // Bad sign-in: wrong passwords, then this address waits (A1) before trying bob again, told how long.
            for _ in 0..<3 {
                let wrong = LoginRequest(
                    user: "bob", password: "wrong password", deviceName: "x", signatureKey: Base64Bytes([UInt8](repeating: 1, count: 32)),
                    cipherSuite: 1)
                http.expectRefusal(try await http.send(.POST, "/v1/login", json: wrong), .invalidCredentials)
            }
            let limited = LoginRequest(
                user: "bob", password: network.password, deviceName: "x", signatureKey: Base64Bytes([UInt8](repeating: 2, count: 32)),
                cipherSuite: 1)
            let waited = try await http.send(.POST, "/v1/login", json: limited)
            http.expectRefusal(waited, .rateLimited)
            #expect(waited.retryAfter.map { $0 >= 1 } == true)
        }
    }
}
