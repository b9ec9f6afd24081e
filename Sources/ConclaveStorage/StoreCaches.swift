import ConclaveProtocol
import Foundation
import Synchronization

/// What the hot path reads on every request, served from memory: sessions
/// by token hash, and each conversation's host and member devices. The database
/// stays the source of truth. Every write transaction of the store drops
/// the caches after it ends, unless it is one of the few that cannot change
/// what they hold (an application message, an acknowledgement: see
/// ``ConclaveStore/writeKeepingCaches(_:)``); so a new kind of write is safe
/// by default.
///
/// A read that overlaps a write must not put the old answer back after the
/// write dropped it: each read notes the generation before it asks the
/// database, and its answer is kept only if no write ended meanwhile.
///
/// Several server processes on one PostgreSQL drop each other's caches:
/// a write that drops them here tells the others, inside its transaction
/// (``ClusterSignal/invalidate``).
public final class StoreCaches: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var sessions: [TokenHash: CachedSession] = [:]
        var members: [ConversationID: ConversationMembers] = [:]
        var hosts: [ConversationID: ConversationHost] = [:]
    }

    /// A session token's hash as a key: hashed as one run of bytes (an
    /// array of bytes is hashed byte by byte).
    struct TokenHash: Hashable {
        let bytes: [UInt8]

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
    }

    struct CachedSession: Sendable {
        let device: DeviceRecord
        let user: UserRecord
        let expiresAt: Date
    }

    /// A conversation's devices of this network and of others.
    struct ConversationMembers: Sendable {
        let local: [MemberDevice]
        let remote: [RemoteDevice]
    }

    /// Entries kept at most per map; past it the map starts again empty.
    private let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int = 100_000) {
        self.capacity = capacity
    }

    /// The generation a read starts at.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// Drops everything: a write has ended.
    func invalidate() {
        state.withLock { state in
            state.generation &+= 1
            state.sessions.removeAll(keepingCapacity: true)
            state.members.removeAll(keepingCapacity: true)
            state.hosts.removeAll(keepingCapacity: true)
        }
    }

    func session(_ tokenHash: [UInt8], now: Date) -> CachedSession? {
        state.withLock { state in
            guard let session = state.sessions[TokenHash(tokenHash)], session.expiresAt > now else { return nil }
            return session
        }
    }

    func keep(session: CachedSession, for tokenHash: [UInt8], readAt generation: UInt64) {
        keep(session, for: TokenHash(tokenHash), in: \.sessions, readAt: generation)
    }

    func host(_ id: ConversationID) -> ConversationHost? {
        state.withLock { $0.hosts[id] }
    }

    func keep(host: ConversationHost, of id: ConversationID, readAt generation: UInt64) {
        keep(host, for: id, in: \.hosts, readAt: generation)
    }

    func members(_ id: ConversationID) -> ConversationMembers? {
        state.withLock { $0.members[id] }
    }

    func keep(members: ConversationMembers, of id: ConversationID, readAt generation: UInt64) {
        keep(members, for: id, in: \.members, readAt: generation)
    }

    /// Keeps a value read at `generation`, unless a write has ended since.
    private func keep<Key: Hashable, Value>(
        _ value: Value, for key: Key, in map: WritableKeyPath<State, [Key: Value]>, readAt generation: UInt64
    ) {
        state.withLock { state in
            guard state.generation == generation else { return }
            if state[keyPath: map].count >= capacity { state[keyPath: map].removeAll() }
            state[keyPath: map][key] = value
        }
    }
}

/// Where a conversation this network knows of is hosted.
public enum ConversationHost: Sendable, Hashable {
    /// Here.
    case local
    /// On another network (this one relays its members' requests there).
    case remote(NetworkDomain)
}
