import ConclaveProtocol
import Crypto
import Foundation
import _CryptoExtras

/// Password hashing with scrypt (memory-hard), stored as
/// `scrypt$N$r$p$salt$hash` (salt and hash base64).
public struct PasswordHasher: Sendable {
    /// Cost: N = 2^15, r = 8, p = 1 — 32 MiB and tens of milliseconds per
    /// attempt. Tests may lower N.
    public var rounds: Int
    public var blockSize = 8
    public var parallelism = 1

    public init(rounds: Int = 1 << 15) { self.rounds = rounds }

    /// The stored hash of an account that has no password (created by
    /// single sign-on or SCIM): no password verifies against it.
    public static let noPassword = "none"

    public func hash(_ password: String) throws -> String {
        var salt = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for index in salt.indices { salt[index] = UInt8.random(in: 0...255, using: &generator) }
        let key = try derive(password, salt: salt, rounds: rounds, blockSize: blockSize, parallelism: parallelism)
        return "scrypt$\(rounds)$\(blockSize)$\(parallelism)$\(Data(salt).base64EncodedString())$\(Data(key).base64EncodedString())"
    }

    /// Checks a password against a stored hash, in constant time for equal
    /// lengths.
    public func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$").map(String.init)
        guard parts.count == 6, parts[0] == "scrypt", let rounds = Int(parts[1]), let blockSize = Int(parts[2]),
            let parallelism = Int(parts[3]), rounds >= 2, rounds <= 1 << 20, (1...16).contains(blockSize), (1...4).contains(parallelism),
            let salt = Data(base64Encoded: parts[4]), let expected = Data(base64Encoded: parts[5]),
            let key = try? derive(password, salt: Array(salt), rounds: rounds, blockSize: blockSize, parallelism: parallelism)
        else { return false }
        return constantTimeEquals(key, Array(expected))
    }

    private func derive(_ password: String, salt: [UInt8], rounds: Int, blockSize: Int, parallelism: Int) throws -> [UInt8] {
        let key = try KDF.Scrypt.deriveKey(
            from: Array(password.utf8), salt: salt, outputByteCount: 32, rounds: rounds, blockSize: blockSize, parallelism: parallelism,
            maxMemory: 256 * 1024 * 1024)
        return key.withUnsafeBytes { Array($0) }
    }
}

func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in a.indices { difference |= a[index] ^ b[index] }
    return difference == 0
}

/// Random tokens (sessions, the admin token) and their stored hashes.
enum Tokens {
    static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Base64URL.encode(bytes)
    }

    static func hash(_ token: String) -> [UInt8] { Array(SHA256.hash(data: Array(token.utf8))) }
}
