import ConclaveProtocol
import Foundation
import MLS

/// The live WebSocket connections, by device. A write to a device's inbox
/// wakes its connections, which then read the inbox from the store; the
/// store stays the only source of truth, so a wake-up may be lost without
/// losing a message.
actor InboxHub {
    private var listeners: [DeviceID: [UUID: AsyncStream<Void>.Continuation]] = [:]

    /// A stream that yields whenever the device's inbox may have grown, and
    /// finishes when the device is cut off (suspended, deleted, reset).
    func subscribe(_ device: DeviceID) -> (id: UUID, wakeups: AsyncStream<Void>) {
        let id = UUID()
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        listeners[device, default: [:]][id] = continuation
        continuation.yield()
        return (id, stream)
    }

    func unsubscribe(_ device: DeviceID, id: UUID) {
        listeners[device]?[id]?.finish()
        listeners[device]?[id] = nil
        if listeners[device]?.isEmpty == true { listeners[device] = nil }
    }

    func notify(_ devices: Set<DeviceID>) {
        for device in devices {
            for continuation in listeners[device]?.values ?? [:].values { continuation.yield() }
        }
    }

    /// Ends every connection of these devices at once.
    func disconnect(_ devices: [DeviceID]) {
        for device in devices {
            for continuation in listeners[device]?.values ?? [:].values { continuation.finish() }
            listeners[device] = nil
        }
    }
}

/// The Delivery Service's public view of each group (RFC 9420 §12 without
/// keys), kept in memory by epoch and rebuilt from the stored GroupInfo and
/// tree when missing or stale.
actor GroupCache {
    private struct Entry {
        var group: PublicGroup
        var pendingCount: Int
    }

    private var entries: [ConversationID: Entry] = [:]
    private let capacity = 10_000

    func group(_ id: ConversationID, epoch: UInt64, pendingCount: Int) -> PublicGroup? {
        guard let entry = entries[id], entry.group.epoch == epoch, entry.pendingCount == pendingCount else { return nil }
        return entry.group
    }

    func store(_ id: ConversationID, _ group: PublicGroup, pendingCount: Int) {
        if entries.count >= capacity, entries[id] == nil, let victim = entries.keys.first { entries[victim] = nil }
        entries[id] = Entry(group: group, pendingCount: pendingCount)
    }

    func forget(_ id: ConversationID) { entries[id] = nil }
}
