import ConclaveProtocol
import ConclaveTestSupport
import Foundation
import Testing

@testable import ConclaveStorage

/// Inbox runs: a batch of messages gives each recipient device one row per
/// stretch of entries with consecutive sequence numbers and payload ids.
/// Reads, acknowledgements and the sweep treat a run's entries as they do
/// inbox rows, mixed with them in one order.
@Suite struct InboxRunTests {
    typealias Group = MessageStoreTests.Group

    /// Stores payloads of the group's room in one transaction (their ids
    /// follow on) and returns their ids with their bytes.
    static func payloads(_ group: Group, _ count: Int) async throws -> [(id: Int64, data: [UInt8])] {
        let room = group.room
        return try await group.store.write { connection in
            var stored: [(Int64, [UInt8])] = []
            for index in 0..<count {
                let data = randomBytes(64)
                let delivery = Delivery(
                    kind: .application, data: data, messageID: "p-\(index)", senderDevice: group.a, sentAt: testNow(), recipients: [])
                guard
                    case .integer(let id) = try await ConclaveStore.insertPayload(
                        connection, delivery, conversation: room, unlessDuplicate: true)
                else { throw StoreError.corrupt("payloads.id") }
                stored.append((id, data))
            }
            return stored
        }
    }

    /// Writes inbox runs and rows as given: a run is `(device, seq,
    /// entries, first payload)`, a row `(device, seq, payload)`.
    static func write(_ store: ConclaveStore, runs: [(DeviceID, Int64, Int64, Int64)], rows: [(DeviceID, Int64, Int64)]) async throws {
        try await store.write { connection in
            for (device, seq, entries, first) in runs {
                try await connection.execute(
                    "INSERT INTO inbox_runs (device_id, seq, entries, first_payload) VALUES (?, ?, ?, ?)",
                    [.text(device.value), .integer(seq), .integer(entries), .integer(first)])
            }
            for (device, seq, payload) in rows {
                try await connection.execute(
                    "INSERT INTO inbox (device_id, seq, payload_id) VALUES (?, ?, ?)",
                    [.text(device.value), .integer(seq), .integer(payload)])
            }
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func runsAndRowsReadAcknowledgeAndRelease(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let group = try await Group(store)
            let stored = try await Self.payloads(group, 6)
            let p = stored.map(\.id)
            try #require(zip(p, p.dropFirst()).allSatisfy { $0 + 1 == $1 })
            // b1: p1–p4 as a run (1–4), then p5 as a row (5). b2: p2–p4 (1–3) and p5–p6 (4–5) as runs.
            try await Self.write(
                store, runs: [(group.b1, 1, 4, p[0]), (group.b2, 1, 3, p[1]), (group.b2, 4, 2, p[4])], rows: [(group.b1, 5, p[4])])

            let b1 = try await store.allEvents(group.b1)
            #expect(b1.map(\.seq) == [1, 2, 3, 4, 5])
            #expect(b1.map(\.message.bytes) == stored[0...4].map(\.data))
            let b2 = try await store.allEvents(group.b2)
            #expect(b2.map(\.seq) == [1, 2, 3, 4, 5])
            #expect(b2.map(\.message.bytes) == stored[1...5].map(\.data))
            #expect(try await store.inbox(device: group.b1, after: 2, limit: 2, now: testNow()).map(\.seq) == [3, 4])
            #expect(try await store.inbox(device: group.b2, after: 3, limit: 10, now: testNow()).map(\.messageId) == ["p-4", "p-5"])
            #expect(try await store.inboxDepth() == 10)

            // Into the middle of a run: its start goes, and p1, which only b1 had.
            #expect(try await store.acknowledge(device: group.b1, upTo: 2) == 2)
            #expect(try await store.allEvents(group.b1).map(\.seq) == [3, 4, 5])
            #expect(try await store.allEvents(group.b1).map(\.messageId) == ["p-2", "p-3", "p-4"])
            #expect(try await store.count("payloads") == 5)
            #expect(try await store.acknowledge(device: group.b2, upTo: 1) == 1)
            #expect(try await store.count("payloads") == 4)

            // The rest of b1's run and its row: b2 still needs p3–p5.
            #expect(try await store.acknowledge(device: group.b1, upTo: 5) == 3)
            #expect(try await store.allEvents(group.b1).isEmpty)
            #expect(try await store.count("payloads") == 4)
            #expect(try await store.acknowledge(device: group.b2, upTo: .max) == 4)  // any number, however large
            #expect(try await store.count("payloads") == 0)
            #expect(try await store.inboxDepth() == 0)
            #expect(try await store.count("inbox_runs") == 0)
        }
    }

    @Test(arguments: [Backend.sqlite, Backend.postgres])
    func expiredAndOrphanedRunEntriesAreSwept(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let group = try await Group(store)
            let p = try await Self.payloads(group, 3).map(\.id)
            try await Self.write(store, runs: [(group.b1, 1, 3, p[0]), (group.b2, 1, 1, p[2])], rows: [])
            let soon = testNow().addingTimeInterval(10)
            try await store.write { connection in
                try await connection.execute("UPDATE payloads SET expires_at = ? WHERE id = ?", [.integer(soon.millis), .integer(p[1])])
            }
            #expect(try await store.allEvents(group.b1, now: soon).map(\.seq) == [1, 3])
            #expect(try await store.sweep(now: testNow()) == 0)
            #expect(try await store.sweep(now: soon) == 1)
            #expect(try await store.allEvents(group.b1).map(\.seq) == [1, 3])
            // An acknowledgement counts the entries whose payloads were still stored.
            #expect(try await store.acknowledge(device: group.b1, upTo: 3) == 2)
            #expect(try await store.count("payloads") == 1)

            // A device deleted takes its runs along; the payloads only it had are then orphans.
            #expect(try await store.deleteDevices(of: try name("bob")).count == 2)
            #expect(try await store.count("inbox_runs") == 0)
            #expect(try await store.sweep(now: testNow()) == 1)
            #expect(try await store.count("payloads") == 0)
        }
    }

    @Test("A batch on SQLite writes one run per stretch of a device's entries, at most runLimit long")
    func batchesWriteRuns() async throws {
        try await withStore(.sqlite) { store in
            let group = try await Group(store)
            let stored = try await Self.payloads(group, 5 + 300)
            let p = stored.map { SQLValue.integer($0.id) }
            // m3 is b1's: the others go to b1 and b2; m3 to a and b2. Then 300 for b2 alone.
            let batch: [(payload: SQLValue, recipients: [DeviceID])] =
                [(p[0], [group.b1, group.b2]), (p[1], [group.b1, group.b2, group.b1]), (p[2], [group.a, group.b2])]
                + [(p[3], [group.b1, group.b2]), (p[4], [group.b1, group.b2])] + p[5...].map { ($0, [group.b2]) }
            let sequences = try await store.write { connection in try await ConclaveStore.fanOut(connection, batch: batch) }
            #expect(sequences[2] == [group.a: 1, group.b2: 3])
            #expect(sequences[4] == [group.b1: 4, group.b2: 5])
            #expect(sequences.last == [group.b2: 305])
            let names = [group.a.value: "a", group.b1.value: "b1", group.b2.value: "b2"]
            let runs = try await store.database.read { connection in
                try await connection.query("SELECT device_id, seq, entries FROM inbox_runs", []).map { row in
                    "\(names[try row.text(0)] ?? "?") \(try row.integer(1))+\(try row.integer(2))"
                }
            }
            #expect(Set(runs) == ["a 1+1", "b1 1+2", "b1 3+2", "b2 1+256", "b2 257+49"])
            #expect(try await store.allEvents(group.b1).map(\.messageId) == ["p-0", "p-1", "p-3", "p-4"])
            #expect(try await store.allEvents(group.b2).map(\.seq) == Array(1...305))
            #expect(try await store.allEvents(group.b2).map(\.message.bytes) == stored.map(\.data))
        }
    }
}
