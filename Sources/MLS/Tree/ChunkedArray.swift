/// An array stored as fixed-size chunks, each copied on write by itself.
///
/// A group's tree is a value: processing a commit works on a copy and
/// keeps it only if the commit is accepted. With one flat array that copy
/// costs O(n) per commit; here it costs O(n / 64) and each write O(64).
struct ChunkedArray<Element: Sendable>: Sendable {
    private static var shift: Int { 6 }
    private static var chunkSize: Int { 1 << shift }

    /// One chunk. Its storage is only mutated when the chunk is uniquely
    /// referenced (checked before every write), exactly like Array's own
    /// copy-on-write buffer, so sharing it between values is safe.
    private final class Chunk: @unchecked Sendable {
        var items: [Element]
        init(_ items: [Element]) { self.items = items }
    }

    private var chunks: [Chunk] = []
    private let filler: Element
    private(set) var count = 0

    init(repeating filler: Element, count: Int) {
        self.filler = filler
        resize(to: count)
    }

    subscript(index: Int) -> Element {
        get { chunks[index >> Self.shift].items[index & (Self.chunkSize - 1)] }
        set {
            let chunk = index >> Self.shift
            if !isKnownUniquelyReferenced(&chunks[chunk]) { chunks[chunk] = Chunk(chunks[chunk].items) }
            chunks[chunk].items[index & (Self.chunkSize - 1)] = newValue
        }
    }

    /// Grows with the filler element, or drops elements from the end.
    mutating func resize(to newCount: Int) {
        let neededChunks = (newCount + Self.chunkSize - 1) >> Self.shift
        if neededChunks > chunks.count {
            for _ in chunks.count..<neededChunks {
                chunks.append(Chunk([Element](repeating: filler, count: Self.chunkSize)))
            }
        } else if neededChunks < chunks.count {
            chunks.removeLast(chunks.count - neededChunks)
        }
        // Reset the unused tail of the last chunk, so a later growth sees fillers.
        if newCount < count {
            for index in newCount..<min(count, neededChunks << Self.shift) { self[index] = filler }
        }
        count = newCount
    }
}

/// A dictionary split into 256 shards by hash, each copied on write by itself,
/// for the same reason as ``ChunkedArray``: copying the whole is O(256).
struct ShardedDictionary<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    /// Mutated only when uniquely referenced, as ``ChunkedArray``'s chunks.
    private final class Shard: @unchecked Sendable {
        var entries: [Key: Value]
        init(_ entries: [Key: Value]) { self.entries = entries }
    }

    private var shards: [Shard] = (0..<256).map { _ in Shard([:]) }

    private static func shard(of key: Key) -> Int { key.hashValue & 255 }

    subscript(key: Key) -> Value? {
        get { shards[Self.shard(of: key)].entries[key] }
        set {
            let shard = Self.shard(of: key)
            if !isKnownUniquelyReferenced(&shards[shard]) { shards[shard] = Shard(shards[shard].entries) }
            shards[shard].entries[key] = newValue
        }
    }
}
