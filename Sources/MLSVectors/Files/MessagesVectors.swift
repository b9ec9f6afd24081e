import MLS
import MLSCodec

/// messages.json: every protocol struct decodes and re-encodes byte for byte (RFC 9420).
enum MessagesVectors: VectorFile {
    struct Entry: Decodable {
        let mls_welcome: Hex
        let mls_group_info: Hex
        let mls_key_package: Hex
        let ratchet_tree: Hex
        let group_secrets: Hex
        let add_proposal: Hex
        let update_proposal: Hex
        let remove_proposal: Hex
        let pre_shared_key_proposal: Hex
        let re_init_proposal: Hex
        let external_init_proposal: Hex
        let group_context_extensions_proposal: Hex
        let commit: Hex
        let public_message_application: Hex
        let public_message_proposal: Hex
        let public_message_commit: Hex
        let private_message: Hex
    }

    static func suite(of entry: Entry) -> CipherSuite? { nil }

    static func roundTrip<T: TLSCodable>(_ type: T.Type, _ hex: Hex, _ field: String) throws -> T {
        let value: T
        do {
            value = try T(tlsSerialized: hex.bytes)
        } catch {
            throw VectorMismatch("\(field) does not decode: \(error)")
        }
        try expect(value.tlsSerialized, hex.bytes, "\(field) re-encoding")
        return value
    }

    /// A proposal's own struct, which carries no type field.
    static func roundTripProposal(_ type: ProposalType, _ hex: Hex, _ field: String) throws {
        var reader = TLSReader(hex.bytes)
        let proposal: Proposal
        do {
            proposal = try Proposal.decodeBody(type, from: &reader)
        } catch {
            throw VectorMismatch("\(field) does not decode: \(error)")
        }
        try expect(reader.isAtEnd, "\(field) has trailing bytes")
        var writer = TLSWriter()
        proposal.encodeBody(to: &writer)
        try expect(writer.bytes, hex.bytes, "\(field) re-encoding")
    }

    static func expectWireFormat(_ message: MLSMessage, _ wireFormat: WireFormat, _ field: String) throws {
        try expect(message.wireFormat, wireFormat, "\(field) wire_format")
    }

    static func expectPublic(_ message: MLSMessage, _ contentType: ContentType, _ field: String) throws {
        guard case .publicMessage(let publicMessage) = message.body else { throw VectorMismatch("\(field) is not a PublicMessage") }
        try expect(publicMessage.content.contentType, contentType, "\(field) content_type")
    }

    static func check(_ entry: Entry) throws {
        try expectWireFormat(try roundTrip(MLSMessage.self, entry.mls_welcome, "mls_welcome"), .welcome, "mls_welcome")
        try expectWireFormat(try roundTrip(MLSMessage.self, entry.mls_group_info, "mls_group_info"), .groupInfo, "mls_group_info")
        try expectWireFormat(try roundTrip(MLSMessage.self, entry.mls_key_package, "mls_key_package"), .keyPackage, "mls_key_package")
        _ = try roundTrip(RatchetTreeNodes.self, entry.ratchet_tree, "ratchet_tree")
        _ = try roundTrip(GroupSecrets.self, entry.group_secrets, "group_secrets")
        try roundTripProposal(.add, entry.add_proposal, "add_proposal")
        try roundTripProposal(.update, entry.update_proposal, "update_proposal")
        try roundTripProposal(.remove, entry.remove_proposal, "remove_proposal")
        try roundTripProposal(.psk, entry.pre_shared_key_proposal, "pre_shared_key_proposal")
        try roundTripProposal(.reinit, entry.re_init_proposal, "re_init_proposal")
        try roundTripProposal(.externalInit, entry.external_init_proposal, "external_init_proposal")
        try roundTripProposal(.groupContextExtensions, entry.group_context_extensions_proposal, "group_context_extensions_proposal")
        _ = try roundTrip(Commit.self, entry.commit, "commit")
        try expectPublic(
            try roundTrip(MLSMessage.self, entry.public_message_application, "public_message_application"), .application,
            "public_message_application")
        try expectPublic(
            try roundTrip(MLSMessage.self, entry.public_message_proposal, "public_message_proposal"), .proposal, "public_message_proposal")
        try expectPublic(
            try roundTrip(MLSMessage.self, entry.public_message_commit, "public_message_commit"), .commit, "public_message_commit")
        try expectWireFormat(try roundTrip(MLSMessage.self, entry.private_message, "private_message"), .privateMessage, "private_message")
    }
}
