import ConclaveProtocol
import Crypto
import Foundation

/// A time-based one-time password generator and checker (RFC 6238, built on
/// HOTP, RFC 4226) for administrators' two-factor sign-in.
///
/// The defaults (HMAC-SHA-1, 6 digits, 30-second steps, a 160-bit secret) are
/// what authenticator apps expect; SHA-256 and SHA-512 exist for the RFC 6238
/// test vectors.
struct TOTP: Sendable {
    /// The HMAC hash function; its raw value is the `algorithm` parameter of a
    /// provisioning URI.
    enum Algorithm: String, Sendable, CaseIterable {
        case sha1 = "SHA1"
        case sha256 = "SHA256"
        case sha512 = "SHA512"
    }

    /// The shared secret: the HMAC key.
    let secret: [UInt8]
    /// The length of a code, 6 to 10 decimal digits.
    let digits: Int
    /// The length of a time step, in seconds.
    let period: Int
    let algorithm: Algorithm

    init(secret: [UInt8], digits: Int = 6, period: Int = 30, algorithm: Algorithm = .sha1) {
        precondition((6...10).contains(digits), "TOTP codes have 6 to 10 digits")
        precondition(period > 0, "TOTP periods are positive")
        self.secret = secret
        self.digits = digits
        self.period = period
        self.algorithm = algorithm
    }

    /// A secret given in base32 (as `base32Secret` writes it); nil if the text
    /// is not base32 or holds no bytes.
    init?(base32Secret: String, digits: Int = 6, period: Int = 30, algorithm: Algorithm = .sha1) {
        guard let secret = Base32.decode(base32Secret), !secret.isEmpty else { return nil }
        self.init(secret: secret, digits: digits, period: period, algorithm: algorithm)
    }

    /// A new generator with 20 random bytes (160 bits, RFC 4226 §4's
    /// recommendation) and the defaults authenticator apps expect.
    static func generate() -> TOTP {
        let key = SymmetricKey(size: SymmetricKeySize(bitCount: 160))
        return TOTP(secret: key.withUnsafeBytes { Array($0) })
    }

    /// The secret in RFC 4648 base32, uppercase, without padding.
    var base32Secret: String { Base32.encode(secret) }

    /// The time step of `date`: floor(Unix time / period).
    func step(at date: Date) -> Int64 {
        let steps = (date.timeIntervalSince1970 / Double(period)).rounded(.down)
        guard !steps.isNaN else { return 0 }
        // Clamped so that no date, however far off, traps the conversion or overflows `step ± window`.
        return Int64(Swift.max(Swift.min(steps, 1e18), -1e18))
    }

    /// The code of the step that `date` falls in.
    func code(at date: Date) -> String {
        code(forStep: step(at: date))
    }

    /// The HOTP value (RFC 4226 §5.3) of `step` as the counter, zero-padded to
    /// `digits`.
    func code(forStep step: Int64) -> String {
        let counter = withUnsafeBytes(of: UInt64(bitPattern: step).bigEndian) { Array($0) }
        let key = SymmetricKey(data: secret)
        let mac: [UInt8]
        switch algorithm {
        case .sha1: mac = HMAC<Insecure.SHA1>.authenticationCode(for: counter, using: key).withUnsafeBytes { Array($0) }
        case .sha256: mac = HMAC<SHA256>.authenticationCode(for: counter, using: key).withUnsafeBytes { Array($0) }
        case .sha512: mac = HMAC<SHA512>.authenticationCode(for: counter, using: key).withUnsafeBytes { Array($0) }
        }
        // Dynamic truncation: 31 bits at the offset named by the last byte's low nibble.
        let offset = Int(mac[mac.count - 1] & 0x0f)
        let truncated =
            UInt64(mac[offset] & 0x7f) << 24 | UInt64(mac[offset + 1]) << 16 | UInt64(mac[offset + 2]) << 8 | UInt64(mac[offset + 3])
        var modulus: UInt64 = 1
        for _ in 0..<digits { modulus *= 10 }
        let value = String(truncated % modulus)
        return String(repeating: "0", count: digits - value.count) + value
    }

    /// The step whose code `code` is, among the steps from `window` before the
    /// step of `date` to `window` after it, keeping only steps after
    /// `lastUsedStep` so that no code is accepted twice (pass `Int64.min` when
    /// none has been used yet); nil if none matches.
    ///
    /// `code` must be exactly `digits` ASCII digits once spaces are removed
    /// ("123 456" is accepted). Every candidate is computed and compared in
    /// constant time; if two steps share the code, the later one is returned.
    func matchingStep(_ code: String, at date: Date, window: Int = 1, after lastUsedStep: Int64) -> Int64? {
        precondition(window >= 0, "the window is a number of steps on each side")
        let candidate = code.utf8.filter { $0 != UInt8(ascii: " ") }
        guard candidate.count == digits, candidate.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            return nil
        }
        let now = step(at: date)
        var matched: Int64?
        for offset in -window...window {
            let step = now + Int64(offset)
            let equal = constantTimeEquals(Array(self.code(forStep: step).utf8), candidate)
            if equal && step > lastUsedStep {
                matched = step
            }
        }
        return matched
    }

    /// An `otpauth://` URI for authenticator apps (Google Authenticator's Key
    /// URI format), usually shown as a QR code: label `issuer:account`, then
    /// the secret, issuer, algorithm, digits and period.
    func provisioningURI(issuer: String, account: String) -> String {
        let encodedIssuer = PercentEncoding.unreserved(issuer)
        let label = encodedIssuer + ":" + PercentEncoding.unreserved(account)
        return "otpauth://totp/\(label)?secret=\(base32Secret)&issuer=\(encodedIssuer)"
            + "&algorithm=\(algorithm.rawValue)&digits=\(digits)&period=\(period)"
    }
}

/// RFC 4648 §6 base32 (alphabet A–Z, 2–7), as TOTP secrets are written.
enum Base32 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    /// `bytes` in uppercase base32, without `=` padding.
    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count * 8 + 4) / 5)
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = buffer << 8 | UInt32(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                output.append(alphabet[Int(buffer >> UInt32(bits) & 0x1f)])
            }
        }
        if bits > 0 {
            output.append(alphabet[Int(buffer << UInt32(5 - bits) & 0x1f)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// The bytes of base32 `text`, in either case, ignoring `=` padding and
    /// spaces; nil on any other character, or on a length no encoding has
    /// (1, 3 or 6 characters past a multiple of 8).
    static func decode(_ text: String) -> [UInt8]? {
        var output: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        var characters = 0
        for character in text.utf8 {
            let value: UInt8
            switch character {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = character - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = character - UInt8(ascii: "a")
            case UInt8(ascii: "2")...UInt8(ascii: "7"): value = character - UInt8(ascii: "2") + 26
            case UInt8(ascii: "="), UInt8(ascii: " "): continue
            default: return nil
            }
            characters += 1
            buffer = buffer << 5 | UInt32(value)
            bits += 5
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        guard ![1, 3, 6].contains(characters % 8) else { return nil }
        return output
    }
}
