import Foundation
import NIOCore

/// Every bound the server puts on what one party may cost it
/// (docs/admin-guide.md lists them with their defaults). Set in
/// `conclave.json` under `limits`; a key left out keeps its default.
public struct ServerLimits: Codable, Sendable, Hashable {
    /// Largest application message (the MLS PrivateMessage), bytes.
    public var maxMessageBytes = 256 * 1024
    /// An inbox page (HTTP or WebSocket push) holds at most this many bytes
    /// of messages (at least one message).
    public var inboxPageBytes = 4 << 20
    /// Messages a device may send: sustained per second, and in a burst.
    public var messagesPerSecond = 20.0
    public var messageBurst = 200.0
    /// Message bytes a device may send: sustained per second, and in a burst.
    public var messageBytesPerSecond = 2.0 * 1024 * 1024
    public var messageByteBurst = 16.0 * 1024 * 1024
    /// Failed sign-ins from one address within `signInWindowSeconds`
    /// before that address is refused for the rest of the window.
    public var signInFailuresPerAddress = 10
    /// Failed sign-ins for one user name (from any address) within the
    /// window before only addresses that have not failed for it may try.
    public var signInFailuresPerName = 30
    public var signInWindowSeconds = 300.0
    /// Password hashes computed at once; more wait in a queue of at most
    /// `passwordHashQueue`, beyond which sign-in answers 429 at once.
    public var passwordHashThreads = 1
    public var passwordHashQueue = 32
    /// Key package claims a device may make per minute, and claims of one
    /// user's key packages by others per minute.
    public var keyPackageClaimsPerRequester = 60.0
    public var keyPackageClaimsPerTarget = 120.0
    /// Key packages a device may keep on the server.
    public var keyPackageStock = 200
    /// Requests queued for one peer network; older ones expire after `outboxMaxAgeSeconds`.
    public var outboxPerPeer = 10_000
    public var outboxMaxAgeSeconds = 7.0 * 86_400
    /// Open connections, in total; WebSockets per device.
    public var connections = 20_000
    public var webSocketsPerDevice = 4
    /// Seconds a client has to send a whole request head; seconds of silence before a connection closes.
    public var requestHeadTimeoutSeconds = 10.0
    public var idleTimeoutSeconds = 120.0
    /// Seconds between the server's pings on a WebSocket; a client that has
    /// not answered one by the next is closed (1001).
    public var webSocketPingSeconds = 30.0
    /// Open federation mode: seconds between two first-use checks of one
    /// network, and the time every first-use answer takes (so that its
    /// timing tells nothing of the URL's host or port).
    public var firstUseCheckIntervalSeconds = 60.0
    public var firstUseAnswerSeconds = 2.0
    /// Seconds an upload may go without new bytes, and a complete upload
    /// without a message sharing it, before it is deleted (S6).
    public var uploadTimeoutSeconds = 86_400.0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case maxMessageBytes, inboxPageBytes, messagesPerSecond, messageBurst, messageBytesPerSecond, messageByteBurst
        case signInFailuresPerAddress, signInFailuresPerName, signInWindowSeconds, passwordHashThreads, passwordHashQueue
        case keyPackageClaimsPerRequester, keyPackageClaimsPerTarget, keyPackageStock, outboxPerPeer, outboxMaxAgeSeconds
        case connections, webSocketsPerDevice, requestHeadTimeoutSeconds, idleTimeoutSeconds, firstUseCheckIntervalSeconds
        case firstUseAnswerSeconds, uploadTimeoutSeconds, webSocketPingSeconds
    }

    /// Reads the keys given; the others keep their defaults. A value out of
    /// its range is refused.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        var limits = ServerLimits()
        func read<T: Decodable & Comparable>(_ key: CodingKeys, _ path: WritableKeyPath<ServerLimits, T>, _ range: ClosedRange<T>) throws {
            guard let value = try container.decodeIfPresent(T.self, forKey: key) else { return }
            guard range.contains(value) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "must be in \(range)")
            }
            limits[keyPath: path] = value
        }
        try read(.maxMessageBytes, \.maxMessageBytes, 1_024...(768 * 1024))
        try read(.inboxPageBytes, \.inboxPageBytes, (64 * 1024)...(16 << 20))
        try read(.messagesPerSecond, \.messagesPerSecond, 0.1...1_000_000)
        try read(.messageBurst, \.messageBurst, 1...10_000_000)
        try read(.messageBytesPerSecond, \.messageBytesPerSecond, 1_024...1e12)
        try read(.messageByteBurst, \.messageByteBurst, 1_024...1e12)
        try read(.signInFailuresPerAddress, \.signInFailuresPerAddress, 1...1_000_000)
        try read(.signInFailuresPerName, \.signInFailuresPerName, 1...1_000_000)
        try read(.signInWindowSeconds, \.signInWindowSeconds, 1...86_400)
        try read(.passwordHashThreads, \.passwordHashThreads, 1...64)
        try read(.passwordHashQueue, \.passwordHashQueue, 0...100_000)
        try read(.keyPackageClaimsPerRequester, \.keyPackageClaimsPerRequester, 1...1_000_000)
        try read(.keyPackageClaimsPerTarget, \.keyPackageClaimsPerTarget, 1...1_000_000)
        try read(.keyPackageStock, \.keyPackageStock, 2...10_000)
        try read(.outboxPerPeer, \.outboxPerPeer, 10...10_000_000)
        try read(.outboxMaxAgeSeconds, \.outboxMaxAgeSeconds, 60...(365 * 86_400))
        try read(.connections, \.connections, 10...10_000_000)
        try read(.webSocketsPerDevice, \.webSocketsPerDevice, 1...1_000)
        try read(.requestHeadTimeoutSeconds, \.requestHeadTimeoutSeconds, 1...3_600)
        try read(.idleTimeoutSeconds, \.idleTimeoutSeconds, 5...86_400)
        try read(.webSocketPingSeconds, \.webSocketPingSeconds, 1...3_600)
        try read(.firstUseCheckIntervalSeconds, \.firstUseCheckIntervalSeconds, 1...86_400)
        try read(.firstUseAnswerSeconds, \.firstUseAnswerSeconds, 0.1...30)
        try read(.uploadTimeoutSeconds, \.uploadTimeoutSeconds, 60...(30 * 86_400))
        self = limits
    }

    /// Limits for load generators and benchmarks: the rate limits off, the
    /// sizes as in production.
    public static var unthrottled: ServerLimits {
        var limits = ServerLimits()
        limits.messagesPerSecond = 1_000_000
        limits.messageBurst = 10_000_000
        limits.messageBytesPerSecond = 1e12
        limits.messageByteBurst = 1e12
        limits.keyPackageClaimsPerRequester = 1_000_000
        limits.keyPackageClaimsPerTarget = 1_000_000
        return limits
    }
}

extension TimeAmount {
    /// A setting given in seconds (a fraction allowed), to the millisecond.
    init(seconds: Double) { self = .milliseconds(Int64(seconds * 1_000)) }
}
