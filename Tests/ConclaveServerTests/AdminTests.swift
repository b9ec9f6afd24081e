@_spi(Testing) import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import MLS
import Testing

/// The admin API: accounts and devices, with immediate effect.
@Suite(.serialized)
struct AdminTests {
    @Test("Create, list, suspend, unsuspend, delete users; list and reset devices", arguments: Backend.allCases)
    func accounts(_ backend: Backend) async throws {
        try await TestNetwork.run(backend) { network in
            let admin = network.admin
            try await network.users("alice", "bob", "carol")
            #expect(try await admin.users().map(\.name.value) == ["alice", "bob", "carol"])
            await #expect(throws: ClientError.self) {
                _ = try await admin.addUser(try #require(UserName("alice")), password: "another password", group: nil)
            }
            let info = try await admin.network()
            #expect(info.domain.value == "acme.example")
            #expect(info.keyFingerprint.hasPrefix("sha256:"))
            #expect(info.storage == backend.rawValue)

            let alice = try await network.device("alice")
            let bob = try await network.device("bob")
            let carol = try await network.device("carol")
            let room = try await alice.createRoom(name: "staff", members: [network.address("bob"), network.address("carol")])
            _ = try await bob.receive()
            _ = try await carol.receive()
            #expect(try await admin.devices(try #require(UserName("bob"))).devices.count == 1)

            // Suspension: the session dies at once and sign-in is refused.
            let bobState = try #require(try await bob.groupForTesting(room.id))
            let bobName = try #require(UserName("bob"))
            #expect(try await admin.suspend(bobName).suspended)
            await #expect(throws: ClientError.self) { _ = try await bob.receive() }
            let http = RawHTTP(baseURL: network.url)
            let relogin = LoginRequest(
                user: "bob", password: network.password, deviceName: "again", signatureKey: Base64Bytes([UInt8](repeating: 7, count: 32)),
                cipherSuite: 1)
            // A7: the right password of a suspended account is answered as a wrong one, confirming nothing.
            http.expectRefusal(try await http.send(.POST, "/v1/login", json: relogin), .invalidCredentials)
            // The server proposed removing bob's device; alice's client commits it, and the room goes on without bob.
            _ = try await alice.receive()
            try await alice.send("bob is suspended", to: room.id)
            let carolToken = try #require(await carol.sessionTokenForTesting)
            let carolInbox = try await http.send(.GET, "/v1/inbox", token: carolToken).decode(InboxPage.self).events
            #expect(texts(try await carol.receive()) == ["bob is suspended"])
            // bob's device, with its own saved state, learns it was removed and can open nothing after.
            var state = bobState
            var removedSelf = false
            for event in carolInbox where event.conversation == room.id && event.kind == .handshake {
                if case .commit(let summary) = try? state.process(try MLSMessage(tlsSerialized: event.message.bytes), now: validationNow) {
                    removedSelf = removedSelf || summary.removedSelf
                }
            }
            #expect(removedSelf)
            let after = try #require(carolInbox.first { $0.kind == .application && $0.conversation == room.id })
            #expect(throws: MLSError.self) { _ = try state.process(try MLSMessage(tlsSerialized: after.message.bytes), now: validationNow) }
            #expect(
                Set(try await alice.conversations().first { $0.id == room.id }?.members ?? []) == [
                    network.address("alice"), network.address("carol"),
                ])
            #expect(try await admin.unsuspend(bobName).suspended == false)

            // Reset devices: carol's device is removed from the room and cannot read on.
            let carolName = try #require(UserName("carol"))
            #expect(try await admin.resetDevices(carolName) == 1)
            #expect(try await admin.devices(carolName).devices.isEmpty)
            await #expect(throws: ClientError.self) { _ = try await carol.receive() }
            _ = try await alice.receive()
            try await alice.send("carol's devices are gone", to: room.id)
            #expect(Set(try await alice.conversations().first { $0.id == room.id }?.members ?? []) == [network.address("alice")])

            // Deletion.
            try await admin.delete(carolName)
            #expect(try await admin.users().map(\.name.value) == ["alice", "bob"])
            await #expect(throws: ClientError.self) { try await admin.delete(carolName) }
        }
    }
}
