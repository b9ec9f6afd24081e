import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import Synchronization
import Testing

/// Faults: a server killed under traffic loses no acknowledged message, and
/// the server keeps no message text in its database or logs.
@Suite(.serialized)
struct DurabilityTests {
    @Test("SIGKILL under traffic loses no acknowledged message", arguments: Backend.allCases)
    func killUnderTraffic(_ backend: Backend) async throws {
        guard var network = try await ProcessNetwork.start(backend) else { return }
        defer { network.stop() }
        try await network.users("alice", "bob")
        let alice = try await network.device("alice")
        let bob = try await network.device("bob")
        let direct = try await alice.directConversation(with: network.address("bob"))
        _ = try await bob.receive()

        let acknowledged = Acknowledged()
        let server = network.server
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var index = 0
                while true {
                    index += 1
                    let text = "durable \(index)"
                    do {
                        try await alice.send(text, to: direct.id)
                        acknowledged.append(text)
                    } catch {
                        return  // the server died mid-request: this one was never acknowledged
                    }
                }
            }
            group.addTask {
                await acknowledged.reached(25)
                server.kill()
            }
            try await group.waitForAll()
        }
        #expect(!network.server.isRunning)
        try await network.restart()
        #expect(acknowledged.all.count >= 25)
        try await acknowledged.expectDelivered(to: bob)
        // Both keep talking after the crash.
        try await alice.send("after the crash", to: direct.id)
        #expect(texts(try await bob.receive()) == ["after the crash"])
    }

    @Test("No message text in the server's database files or logs", arguments: Backend.allCases)
    func noPlaintextAtRest(_ backend: Backend) async throws {
        guard let network = try await ProcessNetwork.start(backend) else { return }
        defer { network.stop() }
        try await network.users("alice", "bob")
        let alice = try await network.device("alice")
        let bob = try await network.device("bob")
        let marker = "PLAINTEXT-MARKER-\(UUID().uuidString)"
        let direct = try await alice.directConversation(with: network.address("bob"))
        let room = try await alice.createRoom(name: "marker-room", members: [network.address("bob")])
        try await alice.send("1:1 \(marker)", to: direct.id)
        try await alice.send("room \(marker)", to: room.id)
        // Read one copy back, leave the other pending in the server's inbox.
        #expect(texts(try await bob.receive()).count == 2)
        try await alice.send("pending \(marker)", to: room.id)

        var files = [network.server.logFile]
        let directory = network.dataDirectory
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] { files.append(directory + "/" + name) }
        if backend == .postgres, let postgres = PostgresServer.shared {
            files += Self.files(under: postgres.dataDirectory)
        }
        let needle = Data(marker.utf8)
        var scanned = 0
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            scanned += data.count
            #expect(data.range(of: needle) == nil, "message text found in \(file)")
        }
        #expect(scanned > 0)
        // The client does not keep it in clear either.
        for file in Self.files(under: network.root + "/profiles") {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            #expect(data.range(of: needle) == nil, "message text found in the client's \(file)")
        }
    }

    static func files(under root: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: root) else { return [] }
        var files: [String] = []
        while let path = enumerator.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue {
                files.append(root + "/" + path)
            }
        }
        return files
    }
}

/// The messages the server acknowledged, appended by the sending task;
/// another task can wait until there are enough.
final class Acknowledged: Sendable {
    private struct State {
        var list: [String] = []
        var waiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    func append(_ text: String) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.list.append(text)
            let due = state.waiters.filter { $0.count <= state.list.count }
            state.waiters.removeAll { $0.count <= state.list.count }
            return due.map(\.continuation)
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns once `count` messages are acknowledged.
    func reached(_ count: Int) async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if state.list.count >= count { return true }
                state.waiters.append((count, continuation))
                return false
            }
            if now { continuation.resume() }
        }
    }

    var all: [String] { state.withLock { $0.list } }

    /// Receives on `device` (a few rounds) and expects every acknowledged
    /// message among what arrives, none of them twice.
    func expectDelivered(to device: ConclaveClient, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let sent = all
        var delivered: [String] = []
        for _ in 0..<5 {
            delivered += texts(try await device.receive())
            if Set(delivered).isSuperset(of: sent) { break }
        }
        let missing = Set(sent).subtracting(delivered)
        #expect(missing.isEmpty, "acknowledged but lost: \(missing.sorted())", sourceLocation: sourceLocation)
        #expect(delivered.count == Set(delivered).count, "a message was shown twice", sourceLocation: sourceLocation)
    }
}
