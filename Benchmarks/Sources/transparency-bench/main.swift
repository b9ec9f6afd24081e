import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

// transparency-bench: the key-transparency log's costs (issue 18 targets;
// docs/benchmarks.md#key-transparency-log): appending entries, the size of
// inclusion and consistency proofs, and the time to verify them; then
// appending entries to the log in the database as the server does (SQLite,
// durable), in batches: the server's reconciliation at start, which logs
// every user whose identity key and approved devices have no entry yet.
//
//   transparency-bench [--entries 1000000] [--proofs 10000] [--database-users 10000]

func option(_ name: String) -> Int? {
    let arguments = CommandLine.arguments
    guard let position = arguments.firstIndex(of: name), position + 1 < arguments.count else { return nil }
    return Int(arguments[position + 1])
}

let entries = option("--entries") ?? 1_000_000
let proofs = option("--proofs") ?? 10_000
let databaseUsers = option("--database-users") ?? 10_000
let clock = ContinuousClock()

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

// Entries as the log will hold them: about 150 bytes each (an index, a key, a device-set commitment, a version, a time).
var generator = SystemRandomNumberGenerator()
let template = (0..<150).map { _ in UInt8.random(in: 0...255, using: &generator) }
var leaves: [[UInt8]] = []
leaves.reserveCapacity(entries)
let hashing = clock.measure {
    for index in 0..<entries {
        var entry = template
        withUnsafeBytes(of: UInt64(index).bigEndian) { entry.replaceSubrange(0..<8, with: $0) }
        leaves.append(MerkleLog.leafHash(entry))
    }
}
var log = MerkleLog()
let appending = clock.measure {
    for leaf in leaves { log.append(leafHash: leaf) }
}
let root = log.root

var inclusion: [(index: Int, proof: [[UInt8]])] = []
let proving = clock.measure {
    for _ in 0..<proofs {
        let index = Int.random(in: 0..<entries, using: &generator)
        inclusion.append((index, log.inclusionProof(index: index, size: entries) ?? []))
    }
}
var verified = 0
let verifying = clock.measure {
    for (index, proof) in inclusion
    where MerkleLog.verifyInclusion(leafHash: leaves[index], index: index, size: entries, proof: proof, root: root) {
        verified += 1
    }
}
let old = entries / 3 + 1
let consistency = log.consistencyProof(old: old, new: entries) ?? []
let oldRoot = log.root(size: old) ?? []
var consistent = 0
let checking = clock.measure {
    for _ in 0..<proofs
    where MerkleLog.verifyConsistency(oldSize: old, newSize: entries, oldRoot: oldRoot, newRoot: root, proof: consistency) {
        consistent += 1
    }
}
guard verified == proofs, consistent == proofs else {
    print("FAILED: \(verified) of \(proofs) inclusion proofs and \(consistent) consistency proofs verified")
    exit(1)
}
let largest = inclusion.map(\.proof.count).max() ?? 0
print("| measure | value |")
print("|---|---:|")
print("| entries | \(entries) |")
print("| leaf hashing (150-byte entries) | \(Int(Double(entries) / seconds(hashing))) entries/s |")
print("| appending leaf hashes (tree of stored subtrees) | \(Int(Double(entries) / seconds(appending))) entries/s |")
print("| inclusion proof: hashes (bytes), largest of \(proofs) | \(largest) (\(largest * MerkleLog.hashLength) B) |")
print("| consistency proof \(old) → \(entries): hashes (bytes) | \(consistency.count) (\(consistency.count * MerkleLog.hashLength) B) |")
print("| producing an inclusion proof | \(String(format: "%.1f", seconds(proving) / Double(proofs) * 1e6)) µs |")
print("| verifying an inclusion proof | \(String(format: "%.1f", seconds(verifying) / Double(proofs) * 1e6)) µs |")
print("| verifying a consistency proof | \(String(format: "%.1f", seconds(checking) / Double(proofs) * 1e6)) µs |")

// The database: users with an identity key and an approved device each, and no entry yet.
let directory = NSTemporaryDirectory() + "transparency-bench-\(UUID().uuidString.prefix(8))"
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: directory) }
var logger = Logger(label: "transparency-bench")
logger.logLevel = .warning
let database = try await SQLiteDatabase.open(path: directory + "/conclave.sqlite", logger: logger)
let store = ConclaveStore(database: database)
try await store.migrate()
try await database.transaction { connection in
    for user in 0..<databaseUsers {
        let name = "user\(user)"
        let key = (0..<32).map { _ in UInt8.random(in: 0...255) }
        try await connection.execute(
            "INSERT INTO users (name, password_hash, security_group, created_at) VALUES (?, '-', 'default', 0)", [.text(name)])
        try await connection.execute(
            "INSERT INTO user_identities (user_name, public_key, created_at) VALUES (?, ?, 0)", [.text(name), .blob(key)])
        try await connection.execute(
            "INSERT INTO devices (id, user_name, name, signature_key, certificate, created_at) VALUES (?, ?, 'phone', ?, ?, 0)",
            [.text(DeviceID.random().value), .text(name), .blob(key.reversed()), .blob([0])])
    }
}
var appended = 0
let storing = try await clock.measure { appended = try await store.reconcileTransparency(at: Date()) }
try await database.close()
guard appended == databaseUsers else {
    print("FAILED: \(appended) entries appended to the database for \(databaseUsers) users")
    exit(1)
}
print(
    "| appending to the log in SQLite (batches of 1,000 users, durable), \(databaseUsers) entries | \(Int(Double(appended) / seconds(storing))) entries/s |"
)
