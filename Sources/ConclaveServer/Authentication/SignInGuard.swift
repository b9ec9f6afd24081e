import Foundation

/// Failed sign-ins within a sliding window (rule A1 in docs/server.md),
/// counted by source address, by user name, and by the pair. It slows a
/// guesser without locking the owner out:
///
/// - an address with `perAddress` failures (any names) is refused for the
///   rest of the window;
/// - a name with `perName` failures (from any addresses) may then be tried
///   only from addresses that have not failed for it: the owner signing in
///   from elsewhere gets through, a guesser must keep finding new addresses;
/// - an address that failed for a name waits `2^(n−3)` seconds (up to the
///   window) between attempts after its third failure.
///
/// An admitted attempt counts as in flight until `failed` or `succeeded`
/// (or for a minute at most): attempts sent at once, before any has
/// failed, count against the same limits.
///
/// Memory: entries whose failures have all left the window are dropped;
/// at most `capacity` addresses and names are tracked (the oldest go).
actor SignInGuard {
    private struct Failures {
        var times: [Date] = []
        mutating func trim(before cutoff: Date) { times.removeAll { $0 <= cutoff } }
    }

    let perAddress: Int
    let perName: Int
    let window: TimeInterval
    private let capacity: Int
    private var byAddress: [String: Failures] = [:]
    private var byName: [String: Failures] = [:]
    private var byPair: [String: Failures] = [:]
    /// Admitted attempts not finished yet, by address and by pair.
    private var inFlight: [String: Failures] = [:]
    private static let inFlightLimit: TimeInterval = 60

    init(perAddress: Int, perName: Int, window: TimeInterval, capacity: Int = 100_000) {
        self.perAddress = perAddress
        self.perName = perName
        self.window = window
        self.capacity = capacity
    }

    /// Nil when this address may try this name now; else the seconds to wait.
    func admit(address: String, name: String, now: Date) -> TimeInterval? {
        let cutoff = now.addingTimeInterval(-window)
        let (pairKey, inFlightCutoff) = (Self.pairKey(address, name), now.addingTimeInterval(-Self.inFlightLimit))
        let (addressInFlight, pairInFlight) = (
            recent(&inFlight, "a" + address, inFlightCutoff).count, recent(&inFlight, "p" + pairKey, inFlightCutoff).count
        )
        let fromAddress = recent(&byAddress, address, cutoff)
        if fromAddress.count + addressInFlight >= perAddress { return fromAddress.first.map { $0.timeIntervalSince(cutoff) } ?? 1 }
        let pair = recent(&byPair, pairKey, cutoff)
        if recent(&byName, name, cutoff).count >= perName, let oldest = pair.first { return oldest.timeIntervalSince(cutoff) }
        if pair.count + pairInFlight >= 3 {
            if pairInFlight > 0 { return 1 }  // one at a time once backing off
            if let last = pair.last {
                let wait = min(window, pow(2, Double(pair.count - 3))) - now.timeIntervalSince(last)
                if wait > 0 { return wait }
            }
        }
        inFlight["a" + address, default: Failures()].times.append(now)
        inFlight["p" + pairKey, default: Failures()].times.append(now)
        return nil
    }

    /// Ends an admitted attempt that neither failed nor succeeded (the
    /// server could not tell: a busy hashing pool, an unreachable provider).
    func abandoned(address: String, name: String) { finish(address: address, name: name) }

    /// Ends an admitted attempt.
    private func finish(address: String, name: String) {
        for key in ["a" + address, "p" + Self.pairKey(address, name)] {
            guard var entry = inFlight[key], !entry.times.isEmpty else { continue }
            entry.times.removeFirst()
            inFlight[key] = entry.times.isEmpty ? nil : entry
        }
    }

    func failed(address: String, name: String, now: Date) {
        finish(address: address, name: name)
        byAddress[address, default: Failures()].times.append(now)
        byName[name, default: Failures()].times.append(now)
        byPair[Self.pairKey(address, name), default: Failures()].times.append(now)
        if byAddress.count + byName.count > capacity { prune(now: now) }
    }

    /// A correct password clears this address's failures for this name.
    func succeeded(address: String, name: String) {
        finish(address: address, name: name)
        byPair[Self.pairKey(address, name)] = nil
    }

    private func recent(_ table: inout [String: Failures], _ key: String, _ cutoff: Date) -> [Date] {
        guard var entry = table[key] else { return [] }
        entry.trim(before: cutoff)
        table[key] = entry.times.isEmpty ? nil : entry
        return entry.times
    }

    /// Drops what has left the window (done on its own when the tables grow).
    func forgetExpired(now: Date) { prune(now: now) }

    /// Drops what has left the window; then, if still too many, the entries
    /// whose last failure is oldest.
    private func prune(now: Date) {
        let cutoff = now.addingTimeInterval(-window)
        byAddress = Self.pruned(byAddress, cutoff: cutoff, keep: capacity / 2)
        byName = Self.pruned(byName, cutoff: cutoff, keep: capacity / 2)
        byPair = Self.pruned(byPair, cutoff: cutoff, keep: capacity / 2)
        inFlight = Self.pruned(inFlight, cutoff: now.addingTimeInterval(-Self.inFlightLimit), keep: capacity / 2)
    }

    private static func pruned(_ table: [String: Failures], cutoff: Date, keep: Int) -> [String: Failures] {
        var live: [String: Failures] = [:]
        for (key, var entry) in table {
            entry.trim(before: cutoff)
            if !entry.times.isEmpty { live[key] = entry }
        }
        guard live.count > keep else { return live }
        let newest = live.sorted { ($0.value.times.last ?? .distantPast) > ($1.value.times.last ?? .distantPast) }.prefix(keep)
        return Dictionary(uniqueKeysWithValues: newest.map { ($0.key, $0.value) })
    }

    private static func pairKey(_ address: String, _ name: String) -> String { address + "\u{0}" + name }

    /// Entries tracked (for tests).
    var tracked: Int { byAddress.count + byName.count + byPair.count + inFlight.count }
}
