import ConclaveProtocol
import ConclaveStorage
import Foundation

/// A time the schema can store exactly (whole milliseconds).
public func testNow() -> Date { Date(millis: Date().millis) }

public func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

/// Rows written straight into a store, for tests of the store and of the
/// server's parts that read it.
extension ConclaveStore {
    @discardableResult
    public func addUser(_ text: String, at time: Date = testNow()) async throws -> UserName {
        guard let user = UserName(text) else { throw TestSupportError("not a user name: \(text)") }
        try await createUser(
            UserRecord(name: user, passwordHash: "$argon2id$\(text)", securityGroup: "default", suspended: false, createdAt: time))
        return user
    }

    public func addDevice(_ user: UserName, at time: Date = testNow()) async throws -> DeviceID {
        let id = DeviceID.random()
        try await createDevice(
            DeviceRecord(
                id: id, user: user, name: "laptop", signatureKey: randomBytes(32), certificate: randomBytes(180), createdAt: time,
                lastSeenAt: nil))
        return id
    }

    /// A room at epoch 0 created by `creator`.
    public func addRoom(_ creator: MemberDevice, directKey: String? = nil) async throws -> ConversationRecord {
        let room = ConversationRecord(
            id: .random(), kind: directKey == nil ? .room : .direct, name: directKey == nil ? "room" : nil, directKey: directKey,
            createdBy: creator.user, createdAt: testNow(), epoch: 0, groupInfo: randomBytes(400), ratchetTree: randomBytes(300))
        try await createConversation(room, creator: creator)
        return room
    }

    /// A commit from `epoch` to `epoch + 1` with the given devices and deliveries.
    @discardableResult
    public func commit(
        _ id: ConversationID, from epoch: UInt64, devices: [MemberDevice], added: [UserName] = [], removed: [UserName] = [],
        deliveries: [Delivery] = []
    ) async throws -> (outcome: CommitOutcome, notified: Set<DeviceID>) {
        try await applyCommit(
            CommitWrite(
                conversation: id, fromEpoch: epoch, toEpoch: epoch + 1, groupInfo: randomBytes(400), ratchetTree: randomBytes(300),
                devices: devices, addedUsers: added, removedUsers: removed, deliveries: deliveries))
    }
}
