import Crypto
import Foundation
import MLSCodec
import Testing

@testable import MLS

/// The hybrid post-quantum suite 0x004D (docs/mls.md#post-quantum): SHAKE256,
/// X-Wing's keys and decapsulation, DeriveKeyPair as OpenMLS ≤ 0.9 runs it,
/// and the HPKE key schedule, against known answers (XWingVectors: Python's
/// hashlib, draft-06 Appendix C, draft-ietf-hpke-pq A.5); then HPKE and
/// whole groups on the suite.
@Suite("X-Wing suite 0x004D")
struct XWingTests {
    static func hex(_ text: String) -> [UInt8] { DecoderFuzzTests.hex(text) }
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    let provider: CipherSuiteProvider

    init() throws { provider = try CipherSuiteProvider(.xwingChacha20Sha256Ed25519) }

    @Test("SHAKE256 gives Python hashlib's answers, across block boundaries")
    func shake256() {
        for vector in XWingVectors.shake256 {
            let output = SHAKE256.hash(Self.hex(vector.message), outputLength: vector.outputLength)
            #expect(Self.hex(output) == vector.output, "message of \(vector.message.count / 2) bytes, \(vector.outputLength) out")
        }
    }

    @Test("X-Wing draft-06 Appendix C: the seed gives the public key, decapsulation the shared secret")
    func kemVectors() throws {
        for vector in XWingVectors.xwingKEM {
            let privateKey = HPKEPrivateKey(Self.hex(vector.seed))
            #expect(try provider.hpkePublicKey(of: privateKey).bytes == Self.hex(vector.publicKey))
            #expect(try provider.xwingDecapsulate(Self.hex(vector.ciphertext), privateKey) == Self.hex(vector.sharedSecret))
        }
    }

    @Test("DeriveKeyPair: seed = SHAKE256(ikm, 32), as hpke-rs 0.3–0.7 (OpenMLS ≤ 0.9) derives it")
    func deriveKeyPair() throws {
        for vector in XWingVectors.deriveKeyPair {
            let pair = try provider.deriveKeyPair(ikm: Self.hex(vector.ikm))
            #expect(pair.privateKey.secret.bytes == Self.hex(vector.seed))
            #expect(Self.hex(Array(SHA256.hash(data: pair.publicKey.bytes))) == vector.publicKeySHA256)
        }
    }

    @Test("HPKE key schedule (RFC 9180 §5.1): draft-ietf-hpke-pq A.5 with KEM id 0x647a, and the same with 0x004D")
    func hpkeKeySchedule() throws {
        for vector in XWingVectors.hpke {
            let privateKey = HPKEPrivateKey(Self.hex(vector.skRm))
            #expect(try provider.hpkePublicKey(of: privateKey).bytes == Self.hex(vector.pkRm))
            let sharedSecret = try provider.xwingDecapsulate(Self.hex(vector.enc), privateKey)
            #expect(sharedSecret == Self.hex(vector.sharedSecret))
            let secrets = provider.hpkeKeySchedule(kemIdentifier: 0x647a, sharedSecret: sharedSecret, info: Self.hex(vector.info))
            #expect(Self.hex(secrets.key) == vector.key)
            #expect(Self.hex(secrets.baseNonce) == vector.baseNonce)
            #expect(Self.hex(secrets.exporterSecret) == vector.exporterSecret)
            // Sequence 0 is what MLS uses (one message per context); the later ones check the nonce arithmetic's inputs.
            for encryption in vector.encryptions {
                var nonce = secrets.baseNonce
                for index in 0..<8 { nonce[nonce.count - 1 - index] ^= UInt8(truncatingIfNeeded: encryption.seq >> (8 * index)) }
                #expect(Self.hex(nonce) == encryption.nonce)
                let opened = try provider.open(
                    key: secrets.key, nonce: nonce, aad: Self.hex(encryption.aad), ciphertext: Self.hex(encryption.ct))
                #expect(Self.hex(opened) == encryption.pt)
            }
            for export in vector.exports {
                let value = provider.hpkeExport(
                    secrets, kemIdentifier: 0x647a, context: Self.hex(export.exporterContext), length: export.length)
                #expect(Self.hex(value) == export.value)
            }
            let ours = provider.hpkeKeySchedule(
                kemIdentifier: CipherSuiteProvider.xwingHPKEKEMIdentifier, sharedSecret: sharedSecret, info: Self.hex(vector.info))
            #expect(Self.hex(ours.key) == vector.keyWith004D)
            #expect(Self.hex(ours.baseNonce) == vector.baseNonceWith004D)
            #expect(Self.hex(ours.exporterSecret) == vector.exporterSecretWith004D)
        }
    }

    @Test("HPKE seal/open and export round-trip; a wrong key, a changed encapsulation or bad sizes are refused")
    func hpkeRoundTrip() throws {
        let random = SeededRandom(seed: 77)
        let recipient = try provider.generateHPKEKeyPair(random: random)
        #expect(recipient.publicKey.bytes.count == 1216 && recipient.privateKey.secret.bytes.count == 32)
        let (kemOutput, ciphertext) = try provider.hpkeSeal(
            publicKey: recipient.publicKey, info: [1, 2, 3], aad: [9], plaintext: Array("path secret".utf8))
        #expect(kemOutput.count == 1120)
        let opened = try provider.hpkeOpen(
            privateKey: recipient.privateKey, kemOutput: kemOutput, info: [1, 2, 3], aad: [9], ciphertext: ciphertext)
        #expect(opened == Array("path secret".utf8))
        let other = try provider.generateHPKEKeyPair(random: random)
        #expect(throws: MLSError.self) {
            _ = try provider.hpkeOpen(
                privateKey: other.privateKey, kemOutput: kemOutput, info: [1, 2, 3], aad: [9], ciphertext: ciphertext)
        }
        var changed = kemOutput
        changed[500] ^= 1
        #expect(throws: MLSError.self) {
            _ = try provider.hpkeOpen(
                privateKey: recipient.privateKey, kemOutput: changed, info: [1, 2, 3], aad: [9], ciphertext: ciphertext)
        }
        #expect(throws: MLSError.self) {
            _ = try provider.hpkeOpen(
                privateKey: recipient.privateKey, kemOutput: Array(kemOutput.dropLast()), info: [1, 2, 3], aad: [9], ciphertext: ciphertext)
        }
        #expect(throws: MLSError.self) { try provider.validateHPKEPublicKey(HPKEPublicKey(Array(recipient.publicKey.bytes.dropLast()))) }
        let (exportOutput, sent) = try provider.hpkeExportSend(
            publicKey: recipient.publicKey, info: [7], exporterContext: Array("MLS 1.0 external init secret".utf8), length: 32)
        let received = try provider.hpkeExportReceive(
            privateKey: recipient.privateKey, kemOutput: exportOutput, info: [7],
            exporterContext: Array("MLS 1.0 external init secret".utf8),
            length: 32)
        #expect(sent == received)
    }
}
