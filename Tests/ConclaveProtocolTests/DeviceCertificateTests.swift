import ConclaveProtocol
import Foundation
import MLS
import MLSCodec
import Testing

/// C1: only a certificate signed by its user's network, and binding the
/// leaf's own key, becomes a ``VerifiedDeviceCertificate``.
@Suite struct DeviceCertificateTests {
    let acme = NetworkSigningKey.generate(domain: NetworkDomain("acme.example")!)
    let globex = NetworkSigningKey.generate(domain: NetworkDomain("globex.example")!)
    let alice = UserAddress("alice@acme.example")!

    func issue(_ key: NetworkSigningKey, user: UserAddress, signatureKey: SignaturePublicKey) throws -> VerifiedDeviceCertificate {
        try VerifiedDeviceCertificate.issue(
            user: user, device: DeviceID.random(), signatureKey: signatureKey, cipherSuite: .x25519Aes128Sha256Ed25519, issuedAt: 1,
            by: key)
    }

    @Test func anIssuedCertificateVerifiesWithItsNetworkKeyOnly() throws {
        let signatureKey = SignaturePublicKey(Array(repeating: 7, count: 32))
        let issued = try issue(acme, user: alice, signatureKey: signatureKey)
        let travelled = try UnverifiedDeviceCertificate(tlsSerialized: issued.tlsSerialized)
        #expect(travelled.verified(by: acme.publicKey) == issued)
        // Another network's key, even one that claims the same domain, does not verify it.
        #expect(travelled.verified(by: globex.publicKey) == nil)
        #expect(travelled.verified(by: NetworkPublicKey(domain: acme.domain, rawKey: globex.publicKey.rawKey)) == nil)
    }

    @Test func aNetworkCannotCertifyAnotherNetworksUser() throws {
        // globex signs a certificate naming an acme user: verifying with globex's key fails, the domains differ.
        let forged = try issue(globex, user: alice, signatureKey: SignaturePublicKey(Array(repeating: 1, count: 32)))
        #expect(forged.certificate.verified(by: globex.publicKey) == nil)
    }

    @Test func aTamperedCertificateDoesNotVerify() throws {
        let issued = try issue(acme, user: alice, signatureKey: SignaturePublicKey(Array(repeating: 7, count: 32)))
        var bytes = issued.tlsSerialized
        for index in stride(from: 0, to: bytes.count, by: 7) {
            var tampered = bytes
            tampered[index] ^= 0x01
            if let decoded = try? UnverifiedDeviceCertificate(tlsSerialized: tampered) {
                #expect(decoded.verified(by: acme.publicKey) == nil, "byte \(index)")
            }
        }
        bytes.removeLast()
        #expect(throws: (any Error).self) { try UnverifiedDeviceCertificate(tlsSerialized: bytes) }
    }

    @Test func aCertificateBindsItsLeafsKey() throws {
        let provider = try CipherSuiteProvider(.x25519Aes128Sha256Ed25519)
        let signer = try provider.generateSignatureKey(random: SystemRandom())
        let other = try provider.generateSignatureKey(random: SystemRandom())
        let certificate = try issue(acme, user: alice, signatureKey: signer.publicKey)
        let lifetime = Lifetime(notBefore: 0, notAfter: .max)
        let own = try KeyPackageBundle.create(
            provider, credential: certificate.credential, signer: signer, lifetime: lifetime, random: SystemRandom())
        let stolen = try KeyPackageBundle.create(
            provider, credential: certificate.credential, signer: other, lifetime: lifetime, random: SystemRandom())
        #expect(VerifiedDeviceCertificate.verify(leaf: own.keyPackage.leafNode, networkKey: acme.publicKey) == certificate)
        #expect(VerifiedDeviceCertificate.verify(leaf: stolen.keyPackage.leafNode, networkKey: acme.publicKey) == nil)
    }
}

/// The closed set of API error codes: each code has one status, and the
/// codes the relay treats as final are refusals (4xx).
@Suite struct ErrorCodeTests {
    @Test func everyCodeHasOneStatusAndAMeaning() {
        for code in ErrorCode.allCases {
            #expect((400...599).contains(code.status), "\(code)")
            #expect(!code.meaning.isEmpty)
            if code.isFinal { #expect((400..<500).contains(code.status), "\(code) is final but not a refusal") }
        }
        #expect(Set(ErrorCode.allCases.map(\.rawValue)).count == ErrorCode.allCases.count)
    }

    @Test func codesTravelAsTheirSnakeCaseNames() throws {
        let body = APIErrorBody(.init(code: .wrongEpoch, message: "m", currentEpoch: 3))
        let json = String(decoding: try ConclaveJSON.encoder().encode(body), as: UTF8.self)
        #expect(json.contains(#""code":"wrong_epoch""#))
        #expect(try ConclaveJSON.decoder().decode(APIErrorBody.self, from: Data(json.utf8)) == body)
    }
}
