/// SHAKE256 (FIPS 202 §6.2): the extendable-output function X-Wing derives
/// its keys with. swift-crypto has no public SHAKE, so it is here, on the
/// Keccak-f[1600] permutation; checked against Python's hashlib in
/// `XWingTests`. It hashes public or key-derivation input only, and its
/// running time depends only on the lengths.
enum SHAKE256 {
    private static let rate = 136

    static func hash(_ message: [UInt8], outputLength: Int) -> [UInt8] {
        var state = [UInt64](repeating: 0, count: 25)
        var offset = 0
        while message.count - offset >= rate {
            absorb(message[offset..<offset + rate], into: &state)
            offset += rate
        }
        var last = [UInt8](repeating: 0, count: rate)
        last.replaceSubrange(0..<(message.count - offset), with: message[offset...])
        last[message.count - offset] ^= 0x1F  // the SHAKE domain bits and the first padding bit
        last[rate - 1] ^= 0x80
        absorb(last[...], into: &state)
        var output: [UInt8] = []
        output.reserveCapacity(outputLength)
        while true {
            for lane in 0..<(rate / 8) {
                var word = state[lane]
                for _ in 0..<8 {
                    guard output.count < outputLength else { return output }
                    output.append(UInt8(truncatingIfNeeded: word))
                    word >>= 8
                }
            }
            if output.count >= outputLength { return output }
            permute(&state)
        }
    }

    private static func absorb(_ block: ArraySlice<UInt8>, into state: inout [UInt64]) {
        var index = block.startIndex
        for lane in 0..<(rate / 8) {
            var word: UInt64 = 0
            for byte in 0..<8 { word |= UInt64(block[index + byte]) << (8 * UInt64(byte)) }
            state[lane] ^= word
            index += 8
        }
        permute(&state)
    }

    private static let roundConstants: [UInt64] = [
        0x0000_0000_0000_0001, 0x0000_0000_0000_8082, 0x8000_0000_0000_808A, 0x8000_0000_8000_8000, 0x0000_0000_0000_808B,
        0x0000_0000_8000_0001, 0x8000_0000_8000_8081, 0x8000_0000_0000_8009, 0x0000_0000_0000_008A, 0x0000_0000_0000_0088,
        0x0000_0000_8000_8009, 0x0000_0000_8000_000A, 0x0000_0000_8000_808B, 0x8000_0000_0000_008B, 0x8000_0000_0000_8089,
        0x8000_0000_0000_8003, 0x8000_0000_0000_8002, 0x8000_0000_0000_0080, 0x0000_0000_0000_800A, 0x8000_0000_8000_000A,
        0x8000_0000_8000_8081, 0x8000_0000_0000_8080, 0x0000_0000_8000_0001, 0x8000_0000_8000_8008,
    ]

    /// ρ rotation offsets by lane index x + 5y.
    private static let rotations: [UInt64] = [
        0, 1, 62, 28, 27,
        36, 44, 6, 55, 20,
        3, 10, 43, 25, 39,
        41, 45, 15, 21, 8,
        18, 2, 61, 56, 14,
    ]

    private static func rotate(_ word: UInt64, _ count: UInt64) -> UInt64 {
        count == 0 ? word : (word << count) | (word >> (64 - count))
    }

    /// Keccak-f[1600]: 24 rounds of θ, ρ, π, χ, ι on lanes A[x + 5y].
    private static func permute(_ state: inout [UInt64]) {
        var parity = [UInt64](repeating: 0, count: 5)
        var moved = [UInt64](repeating: 0, count: 25)
        for round in 0..<24 {
            for x in 0..<5 { parity[x] = state[x] ^ state[x + 5] ^ state[x + 10] ^ state[x + 15] ^ state[x + 20] }
            for x in 0..<5 {
                let mix = parity[(x + 4) % 5] ^ rotate(parity[(x + 1) % 5], 1)
                for y in 0..<5 { state[x + 5 * y] ^= mix }
            }
            for x in 0..<5 {
                for y in 0..<5 {
                    // π: B[y, 2x + 3y] = ρ(A[x, y])
                    moved[y + 5 * ((2 * x + 3 * y) % 5)] = rotate(state[x + 5 * y], rotations[x + 5 * y])
                }
            }
            for y in 0..<5 {
                for x in 0..<5 {
                    state[x + 5 * y] = moved[x + 5 * y] ^ (~moved[(x + 1) % 5 + 5 * y] & moved[(x + 2) % 5 + 5 * y])
                }
            }
            state[0] ^= roundConstants[round]
        }
    }
}
