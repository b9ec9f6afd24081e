import Foundation
import Synchronization

/// Token buckets by key: each key may spend `burst` at once and regains
/// `rate` per second. Full buckets are forgotten, so memory stays
/// proportional to the keys active within the last `burst / rate` seconds,
/// and at most `capacity` keys are kept (the fullest are dropped first).
/// A lock, not an actor: spending is a few arithmetic steps on the hot
/// path of every message, too little to pay two task switches for.
final class RateLimiter<Key: Hashable & Sendable>: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: Date
    }

    let rate: Double
    let burst: Double
    private let capacity: Int
    private let buckets = Mutex<[Key: Bucket]>([:])

    init(rate: Double, burst: Double, capacity: Int = 100_000) {
        self.rate = rate
        self.burst = burst
        self.capacity = capacity
    }

    /// Spends `cost` from the key's bucket if it holds that much; otherwise
    /// spends nothing and returns the seconds until it would.
    func spend(_ cost: Double = 1, for key: Key, now: Date) -> TimeInterval? {
        buckets.withLock { buckets in
            let wait = spend(cost, from: &buckets[key, default: Bucket(tokens: burst, updated: now)], now: now)
            if buckets.count > capacity { prune(&buckets, now: now) }
            return wait
        }
    }

    /// One lookup of the key: its bucket is refilled and spent in place.
    private func spend(_ cost: Double, from bucket: inout Bucket, now: Date) -> TimeInterval? {
        bucket = refilled(bucket, now: now)
        guard bucket.tokens >= cost else { return (cost - bucket.tokens) / rate }
        bucket.tokens -= cost
        return nil
    }

    private func refilled(_ bucket: Bucket?, now: Date) -> Bucket {
        guard let bucket else { return Bucket(tokens: burst, updated: now) }
        let elapsed = max(0, now.timeIntervalSince(bucket.updated))
        return Bucket(tokens: min(burst, bucket.tokens + elapsed * rate), updated: now)
    }

    /// Forgets full buckets; if more than 90 % of the capacity is left, the
    /// fullest down to half of it. So the next pruning is at least a tenth
    /// of the capacity of new keys away: its cost, under the lock, is spread
    /// over them.
    private func prune(_ buckets: inout [Key: Bucket], now: Date) {
        buckets = buckets.filter { refilled($0.value, now: now).tokens < burst }
        guard buckets.count > capacity / 10 * 9 else { return }
        let keep = buckets.sorted { refilled($0.value, now: now).tokens < refilled($1.value, now: now).tokens }.prefix(capacity / 2)
        buckets = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
    }
}
