import MLS
import MLSCodec

/// tree-math.json: array-tree relations for trees of 1 to 512 leaves (RFC 9420 Appendix C).
enum TreeMathVectors: VectorFile {
    struct Entry: Decodable {
        let n_leaves: UInt32
        let n_nodes: UInt32
        let root: UInt32
        let left: [UInt32?]
        let right: [UInt32?]
        let parent: [UInt32?]
        let sibling: [UInt32?]
    }

    static func suite(of entry: Entry) -> CipherSuite? { nil }

    static func check(_ entry: Entry) throws {
        try expect(entry.n_leaves <= TreeMath.maxLeafCount, "n_leaves above 2^31")
        let math = TreeMath(leafCount: entry.n_leaves)
        try expect(math.nodeCount, entry.n_nodes, "n_nodes")
        for array in [entry.left, entry.right, entry.parent, entry.sibling] {
            try expect(array.count, Int(entry.n_nodes), "array length")
        }
        try expect(math.nodeCount, entry.n_nodes, "n_nodes")
        try expect(math.root.rawValue, entry.root, "root")
        for index in 0..<Int(entry.n_nodes) {
            let node = NodeIndex(UInt32(index))
            try expect(math.left(node)?.rawValue, entry.left[index], "left[\(index)]")
            try expect(math.right(node)?.rawValue, entry.right[index], "right[\(index)]")
            try expect(math.parent(node)?.rawValue, entry.parent[index], "parent[\(index)]")
            try expect(math.sibling(node)?.rawValue, entry.sibling[index], "sibling[\(index)]")
        }
    }
}

/// deserialization.json: variable-length vector headers (RFC 9420 §2.1.2).
enum DeserializationVectors: VectorFile {
    struct Entry: Decodable {
        let vlbytes_header: Hex
        let length: Int
    }

    static func suite(of entry: Entry) -> CipherSuite? { nil }

    static func check(_ entry: Entry) throws {
        var reader = TLSReader(entry.vlbytes_header.bytes)
        try expect(try reader.readLength(), entry.length, "length")
        try expect(reader.isAtEnd, "header has trailing bytes")
        var writer = TLSWriter()
        writer.writeLength(entry.length)
        try expect(writer.bytes, entry.vlbytes_header.bytes, "re-encoded header")
    }
}
