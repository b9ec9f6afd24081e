import Foundation
import Testing

@testable import ConclaveServer

/// TOTP (RFC 6238) and HOTP (RFC 4226) against the RFCs' test vectors, base32
/// (RFC 4648), the acceptance window with replay refusal, and provisioning URIs.
@Suite struct TOTPTests {
    /// One row of RFC 6238 Appendix B: a Unix time, its step, and the 8-digit
    /// code under each hash function.
    struct Vector: Sendable, CustomTestStringConvertible {
        let time: Int64
        let step: Int64
        let sha1: String
        let sha256: String
        let sha512: String

        var testDescription: String { "T = \(time)" }
    }

    static let sha1Secret = Array("12345678901234567890".utf8)
    static let sha256Secret = Array("12345678901234567890123456789012".utf8)
    static let sha512Secret = Array("1234567890123456789012345678901234567890123456789012345678901234".utf8)

    /// RFC 6238 Appendix B, exactly as the RFC lists it.
    static let appendixB: [Vector] = [
        Vector(time: 59, step: 0x1, sha1: "94287082", sha256: "46119246", sha512: "90693936"),
        Vector(time: 1_111_111_109, step: 0x23523EC, sha1: "07081804", sha256: "68084774", sha512: "25091201"),
        Vector(time: 1_111_111_111, step: 0x23523ED, sha1: "14050471", sha256: "67062674", sha512: "99943326"),
        Vector(time: 1_234_567_890, step: 0x273EF07, sha1: "89005924", sha256: "91819424", sha512: "93441116"),
        Vector(time: 2_000_000_000, step: 0x3F940AA, sha1: "69279037", sha256: "90698825", sha512: "38618901"),
        Vector(time: 20_000_000_000, step: 0x27BC_86AA, sha1: "65353130", sha256: "77737706", sha512: "47863826"),
    ]

    /// The moment the window tests are taken at, and a generator with the RFC's SHA-1 secret.
    static let now = Date(timeIntervalSince1970: 1_111_111_111)
    static let totp = TOTP(secret: sha1Secret)

    @Test("RFC 6238 Appendix B: SHA-1, SHA-256 and SHA-512, 8 digits", arguments: TOTPTests.appendixB)
    func rfc6238(_ vector: Vector) {
        let date = Date(timeIntervalSince1970: TimeInterval(vector.time))
        let sha1 = TOTP(secret: Self.sha1Secret, digits: 8, algorithm: .sha1)
        let sha256 = TOTP(secret: Self.sha256Secret, digits: 8, algorithm: .sha256)
        let sha512 = TOTP(secret: Self.sha512Secret, digits: 8, algorithm: .sha512)
        #expect(sha1.step(at: date) == vector.step)
        #expect(sha1.code(at: date) == vector.sha1)
        #expect(sha256.code(at: date) == vector.sha256)
        #expect(sha512.code(at: date) == vector.sha512)
        #expect(sha1.code(forStep: vector.step) == vector.sha1)
    }

    @Test("RFC 4226 Appendix D: HOTP, counters 0 to 9, 6 digits")
    func rfc4226() {
        let expected = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]
        let hotp = TOTP(secret: Self.sha1Secret)
        for (counter, code) in expected.enumerated() {
            #expect(hotp.code(forStep: Int64(counter)) == code, "counter \(counter)")
        }
    }

    @Test("Codes are zero-padded to their length")
    func zeroPadding() {
        #expect(Self.totp.code(at: Self.now) == "050471")
        #expect(Self.totp.code(forStep: 37_037_036) == "081804")
    }

    @Test("Steps are floor(Unix time / period)")
    func steps() {
        #expect(Self.totp.step(at: Date(timeIntervalSince1970: 0)) == 0)
        #expect(Self.totp.step(at: Date(timeIntervalSince1970: 29.999)) == 0)
        #expect(Self.totp.step(at: Date(timeIntervalSince1970: 30)) == 1)
        #expect(Self.totp.step(at: Date(timeIntervalSince1970: -1)) == -1)
        #expect(TOTP(secret: Self.sha1Secret, period: 60).step(at: Date(timeIntervalSince1970: 119)) == 1)
    }

    @Test("A generated secret is 20 random bytes, with the defaults authenticator apps expect")
    func generated() {
        let first = TOTP.generate()
        let second = TOTP.generate()
        #expect(first.secret.count == 20)
        #expect(first.secret != second.secret)
        #expect(first.digits == 6)
        #expect(first.period == 30)
        #expect(first.algorithm == .sha1)
        #expect(first.base32Secret.count == 32)
        #expect(first.code(at: Date()).count == 6)
    }

    @Test("The secret round-trips through base32")
    func base32Secret() throws {
        #expect(Self.totp.base32Secret == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
        #expect(try #require(TOTP(base32Secret: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")).secret == Self.sha1Secret)
        #expect(try #require(TOTP(base32Secret: "gezd gnbv gy3t qojq gezd gnbv gy3t qojq")).secret == Self.sha1Secret)
        let generated = TOTP.generate()
        let restored = try #require(TOTP(base32Secret: generated.base32Secret))
        #expect(restored.secret == generated.secret)
        #expect(restored.code(at: Self.now) == generated.code(at: Self.now))
        #expect(TOTP(base32Secret: "") == nil)
        #expect(TOTP(base32Secret: "GEZDGNBV1") == nil)
        #expect(TOTP(base32Secret: "not base32!") == nil)
    }

    @Test("RFC 4648 §10 base32 test vectors, without padding")
    func base32Vectors() {
        let vectors = [
            ("", ""), ("f", "MY"), ("fo", "MZXQ"), ("foo", "MZXW6"), ("foob", "MZXW6YQ"), ("fooba", "MZXW6YTB"), ("foobar", "MZXW6YTBOI"),
        ]
        for (plain, encoded) in vectors {
            #expect(Base32.encode(Array(plain.utf8)) == encoded)
            #expect(Base32.decode(encoded) == Array(plain.utf8))
        }
        // Padded, lowercase and spaced forms decode too.
        #expect(Base32.decode("MY======") == Array("f".utf8))
        #expect(Base32.decode("MZXW6YTBOI======") == Array("foobar".utf8))
        #expect(Base32.decode("mzxw6ytboi") == Array("foobar".utf8))
        #expect(Base32.decode("MZXW 6YTB OI") == Array("foobar".utf8))
    }

    @Test("Base32 round-trips every length and byte")
    func base32RoundTrips() {
        var generator = SystemRandomNumberGenerator()
        for length in 0...64 {
            let bytes = (0..<length).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            let encoded = Base32.encode(bytes)
            #expect(!encoded.contains("="))
            #expect(encoded.count == (length * 8 + 4) / 5)
            #expect(Base32.decode(encoded) == bytes)
            #expect(Base32.decode(encoded.lowercased()) == bytes)
        }
        let everyByte = (0...255).map { UInt8($0) }
        #expect(Base32.decode(Base32.encode(everyByte)) == everyByte)
    }

    @Test("Base32 decoding refuses characters outside the alphabet and impossible lengths")
    func base32Rejects() {
        for text in ["MZXW1", "MZXW8", "MZXW0", "MZXW6!", "MZ-XW", "MZXW\t6", "MZXWé", "MZXW6\n", "M", "MZX", "MZXW6Y"] {
            #expect(Base32.decode(text) == nil, "\(text)")
        }
    }

    @Test("The current, previous and next steps' codes are accepted; two steps away is not")
    func window() {
        let totp = Self.totp
        let now = totp.step(at: Self.now)
        #expect(now == 37_037_037)
        for offset: Int64 in -1...1 {
            #expect(totp.matchingStep(totp.code(forStep: now + offset), at: Self.now, after: 0) == now + offset)
        }
        for offset: Int64 in [-3, -2, 2, 3] {
            #expect(totp.matchingStep(totp.code(forStep: now + offset), at: Self.now, after: 0) == nil)
        }
        // A wider window reaches further; a window of 0 only the current step.
        #expect(totp.matchingStep(totp.code(forStep: now - 2), at: Self.now, window: 2, after: 0) == now - 2)
        #expect(totp.matchingStep(totp.code(forStep: now), at: Self.now, window: 0, after: 0) == now)
        #expect(totp.matchingStep(totp.code(forStep: now + 1), at: Self.now, window: 0, after: 0) == nil)
        #expect(totp.matchingStep("050471", at: Self.now, after: Int64.min) == now)
    }

    @Test("A step at or before the last used one is refused, so no code is accepted twice")
    func replay() {
        let totp = Self.totp
        let now = totp.step(at: Self.now)
        let current = totp.code(forStep: now)
        let used = totp.matchingStep(current, at: Self.now, after: 0)
        #expect(used == now)
        #expect(totp.matchingStep(current, at: Self.now, after: now) == nil)
        #expect(totp.matchingStep(current, at: Self.now.addingTimeInterval(30), after: now) == nil)
        #expect(totp.matchingStep(totp.code(forStep: now - 1), at: Self.now, after: now - 1) == nil)
        #expect(totp.matchingStep(totp.code(forStep: now - 1), at: Self.now, after: now) == nil)
        // The next step's code is still good after the current one was used.
        #expect(totp.matchingStep(totp.code(forStep: now + 1), at: Self.now, after: now) == now + 1)
    }

    @Test("Codes of the wrong length or with anything but ASCII digits are refused")
    func malformed() {
        let totp = Self.totp
        let refused = [
            "", "05047", "0504710", "50471", "05047a", "O50471", "05047.1", "+50471", "-50471", "050471\n", "05\t0471", "０５０４７１", "٠٥٠٤٧١",
        ]
        for code in refused {
            #expect(totp.matchingStep(code, at: Self.now, after: 0) == nil, "\(code)")
        }
    }

    @Test("Spaces inside a code are ignored")
    func spacing() {
        let totp = Self.totp
        let now = totp.step(at: Self.now)
        for code in ["050 471", " 050471 ", "05 04 71", "0 5 0 4 7 1"] {
            #expect(totp.matchingStep(code, at: Self.now, after: 0) == now, "\(code)")
        }
        #expect(totp.matchingStep("050 47", at: Self.now, after: 0) == nil)
    }

    @Test("The provisioning URI percent-encodes the issuer and the account")
    func provisioningURI() throws {
        let uri = Self.totp.provisioningURI(issuer: "Acme Chat", account: "admin@acme.example")
        #expect(
            uri
                == "otpauth://totp/Acme%20Chat:admin%40acme.example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                + "&issuer=Acme%20Chat&algorithm=SHA1&digits=6&period=30")
        let tricky = Self.totp.provisioningURI(issuer: "A&B=C", account: "x:y+z/é?")
        #expect(tricky.hasPrefix("otpauth://totp/A%26B%3DC:x%3Ay%2Bz%2F%C3%A9%3F?secret="))
        #expect(tricky.contains("&issuer=A%26B%3DC&algorithm="))
        let components = try #require(URLComponents(string: uri))
        #expect(components.scheme == "otpauth")
        #expect(components.host == "totp")
        #expect(components.path == "/Acme Chat:admin@acme.example")
        let query = Dictionary(uniqueKeysWithValues: (components.queryItems ?? []).map { ($0.name, $0.value ?? "") })
        #expect(
            query == [
                "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "issuer": "Acme Chat", "algorithm": "SHA1", "digits": "6", "period": "30",
            ])
    }
}
