import Crypto

/// Where the library's randomness comes from. Injected, so that tests and
/// vectors can replay a run; production code uses ``SystemRandom``.
public protocol RandomSource: Sendable {
    func bytes(count: Int) -> [UInt8]
}

/// The operating system's CSPRNG, through swift-crypto.
public struct SystemRandom: RandomSource {
    public init() {}

    public func bytes(count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        return SymmetricKey(size: .init(bitCount: count * 8)).withUnsafeBytes { Array($0) }
    }
}
