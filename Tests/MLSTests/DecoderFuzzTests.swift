import Foundation
import MLS
import MLSCodec
import Testing

/// Robustness of every decoder (RFC 9420 §2.1): truncating or mutating any
/// byte of the official messages, or feeding random bytes, never traps; each
/// failure is a typed error; and anything that does decode re-encodes to
/// exactly the bytes it came from (the encoding is canonical).
@Suite("Decoder robustness")
struct DecoderFuzzTests {
    /// A decoder under test: bytes in, re-encoding out.
    typealias Decoder = @Sendable ([UInt8]) throws -> [UInt8]

    static func decoder<T: TLSCodable & SendableMetatype>(_ type: T.Type) -> Decoder {
        { bytes in try T(tlsSerialized: bytes).tlsSerialized }
    }

    static func proposalDecoder(_ type: ProposalType) -> Decoder {
        { bytes in
            var reader = TLSReader(bytes)
            let proposal = try Proposal.decodeBody(type, from: &reader)
            guard reader.isAtEnd else { throw CodecError(.trailingBytes, "test", offset: reader.position) }
            var writer = TLSWriter()
            proposal.encodeBody(to: &writer)
            return writer.bytes
        }
    }

    /// Field of messages.json → its decoder.
    static let fields: [(String, Decoder)] = [
        ("mls_welcome", decoder(MLSMessage.self)),
        ("mls_group_info", decoder(MLSMessage.self)),
        ("mls_key_package", decoder(MLSMessage.self)),
        ("ratchet_tree", decoder(RatchetTreeNodes.self)),
        ("group_secrets", decoder(GroupSecrets.self)),
        ("add_proposal", proposalDecoder(.add)),
        ("update_proposal", proposalDecoder(.update)),
        ("remove_proposal", proposalDecoder(.remove)),
        ("pre_shared_key_proposal", proposalDecoder(.psk)),
        ("re_init_proposal", proposalDecoder(.reinit)),
        ("external_init_proposal", proposalDecoder(.externalInit)),
        ("group_context_extensions_proposal", proposalDecoder(.groupContextExtensions)),
        ("commit", decoder(Commit.self)),
        ("public_message_application", decoder(MLSMessage.self)),
        ("public_message_proposal", decoder(MLSMessage.self)),
        ("public_message_commit", decoder(MLSMessage.self)),
        ("private_message", decoder(MLSMessage.self)),
    ]

    static func messages() throws -> [[String: String]] {
        let data = try Data(contentsOf: VectorDirectory.url.appendingPathComponent("messages.json"))
        return try JSONDecoder().decode([[String: String]].self, from: data)
    }

    static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex, let next = text.index(index, offsetBy: 2, limitedBy: text.endIndex) {
            bytes.append(UInt8(text[index..<next], radix: 16) ?? 0)
            index = next
        }
        return bytes
    }

    /// Decodes `input`: either a typed error or a canonical value.
    static func probe(_ decode: Decoder, _ input: [UInt8], _ label: String) -> Bool {
        do {
            let reencoded = try decode(input)
            if reencoded != input {
                Issue.record("\(label): decoded but re-encoded differently")
                return false
            }
            return true
        } catch is CodecError {
            return false
        } catch is MLSError {
            return false
        } catch {
            Issue.record("\(label): untyped error \(type(of: error))")
            return false
        }
    }

    @Test(arguments: 0..<fields.count)
    func truncatedAndMutatedOfficialMessages(field: Int) throws {
        let (name, decode) = Self.fields[field]
        var inputs = 0
        for (entry, vector) in try Self.messages().enumerated() {
            guard let text = vector[name] else {
                Issue.record("messages.json entry \(entry) has no \(name)")
                continue
            }
            let original = Self.hex(text)
            #expect(Self.probe(decode, original, "\(name)[\(entry)]"))
            for length in 0..<original.count {
                #expect(!Self.probe(decode, Array(original.prefix(length)), "\(name)[\(entry)] cut at \(length)"))
            }
            for index in original.indices {
                for flip: UInt8 in [0x01, 0x80, 0xFF] {
                    var mutated = original
                    mutated[index] ^= flip
                    _ = Self.probe(decode, mutated, "\(name)[\(entry)] byte \(index) ^ \(flip)")
                }
            }
            inputs += 1 + original.count * 4
        }
        #expect(inputs > 0)
    }

    @Test func randomInputs() {
        let random = SeededRandom(seed: 2026)
        let decoders: [Decoder] =
            Self.fields.map(\.1) + [
                Self.decoder(KeyPackage.self), Self.decoder(LeafNode.self), Self.decoder(GroupInfo.self),
                Self.decoder(Welcome.self), Self.decoder(AuthenticatedContent.self), Self.decoder(Proposal.self),
                Self.decoder(UpdatePath.self), Self.decoder(GroupContext.self), Self.decoder(Credential.self),
            ]
        for round in 0..<2000 {
            let length = Int(random.next() % 300)
            var input = random.bytes(count: length)
            // Bias towards plausible prefixes: a valid MLSMessage header half of the time.
            if round % 2 == 0, input.count >= 4 { input.replaceSubrange(0..<4, with: [0, 1, 0, UInt8(1 + round % 5)]) }
            for (index, decode) in decoders.enumerated() {
                _ = Self.probe(decode, input, "random input \(round) decoder \(index)")
            }
        }
    }
}
