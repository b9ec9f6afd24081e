import ConclaveProtocol
import Foundation

/// The live WebSocket connections, by device. A write to a device's inbox
/// wakes its connections, which then read the inbox from the store; the
/// store stays the only source of truth, so a wake-up may be lost without
/// losing a message.
actor InboxHub {
    private var listeners: [DeviceID: [UUID: AsyncStream<Void>.Continuation]] = [:]

    /// How many connections a device holds.
    func connections(of device: DeviceID) -> Int { listeners[device]?.count ?? 0 }

    /// A stream that yields whenever the device's inbox may have grown, and
    /// finishes when the device is cut off (suspended, deleted, reset); nil
    /// when the device already holds `limit` connections (D24).
    func subscribe(_ device: DeviceID, limit: Int) -> (id: UUID, wakeups: AsyncStream<Void>)? {
        guard connections(of: device) < limit else { return nil }
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
