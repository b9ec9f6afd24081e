import ConclaveProtocol
import ConclaveStorage
import Foundation
import NIOCore

/// A device's requests on a conversation's files, wherever the
/// conversation is hosted (files live with their conversation): here, to
/// the ``FileService``; on another network, relayed there after this
/// network's own file policy for its user (S7).
struct FileRequests: Sendable {
    let files: FileService
    let gateway: FederationGateway

    /// Relayed upload bytes go in pieces of this size (a federation request
    /// body stays under the server's 1 MiB limit).
    static let relayPiece = 512 * 1024

    func create(_ id: ConversationID, _ request: CreateUpload, session: Session) async throws -> FileStatus {
        guard let host = try await gateway.remoteHost(id, session: session) else {
            return try await files.create(id, request, requester: session.requester)
        }
        try await checkOwnPolicy(size: request.size, session: session, download: false)
        return try await gateway.relay(.files, of: id, to: host, request, session: session).0
    }

    func status(_ id: ConversationID, _ file: FileID, session: Session) async throws -> FileStatus {
        guard let host = try await gateway.remoteHost(id, session: session) else {
            return try await files.status(id, file, requester: session.requester)
        }
        return try await gateway.relay(.fileStatus, of: id, to: host, FileQuery(file: file), session: session).0
    }

    func upload<Body: AsyncSequence>(_ id: ConversationID, _ file: FileID, offset: UInt64, body: Body, session: Session) async throws
        -> FileStatus
    where Body.Element == ByteBuffer {
        guard let host = try await gateway.remoteHost(id, session: session) else {
            return try await files.upload(id, file, offset: offset, body: body, requester: session.requester)
        }
        var status = try await gateway.relay(.fileStatus, of: id, to: host, FileQuery(file: file), session: session, as: FileStatus.self).0
        try await checkOwnPolicy(size: status.size, session: session, download: false)
        guard offset == status.received else {
            throw APIError(.wrongOffset, "the server holds the first \(status.received) bytes of this file: send from there")
        }
        var piece: [UInt8] = []
        var sent = offset
        for try await buffer in body {
            piece.append(contentsOf: buffer.readableBytesView)
            guard sent + UInt64(piece.count) <= status.size else {
                throw APIError(.tooLarge, "the body holds more bytes than the upload has left (\(status.size - sent))")
            }
            while piece.count >= Self.relayPiece {
                status = try await gateway.relayFileContent(
                    Array(piece.prefix(Self.relayPiece)), of: file, at: sent, in: id, to: host, session: session)
                sent = status.received
                piece.removeFirst(Self.relayPiece)
            }
        }
        if !piece.isEmpty { status = try await gateway.relayFileContent(piece, of: file, at: sent, in: id, to: host, session: session) }
        return status
    }

    /// What a download sends: the file's sealed size, the range, and a
    /// writer of that range's bytes.
    struct Download: Sendable {
        let size: UInt64
        let range: Range<UInt64>
        let write: @Sendable (_ output: (ByteBuffer) async throws -> Void) async throws -> Void
    }

    func download(_ id: ConversationID, _ file: FileID, range header: String?, session: Session) async throws -> Download {
        guard let host = try await gateway.remoteHost(id, session: session) else {
            let (record, range) = try await files.download(id, file, range: header, requester: session.requester)
            let blobs = files.blobs
            return Download(size: record.size, range: range) { output in try await blobs.read(record.id, range: range, into: output) }
        }
        let status = try await gateway.relay(.fileStatus, of: id, to: host, FileQuery(file: file), session: session, as: FileStatus.self).0
        try await checkOwnPolicy(size: status.size, session: session, download: true)
        guard status.complete else { throw APIError(.fileIncomplete, "the file's upload is not complete") }
        let range = try FileService.byteRange(header, size: status.size)
        let gateway = gateway
        return Download(size: status.size, range: range) { output in
            var offset = range.lowerBound
            while offset < range.upperBound {
                let length = min(FederationGateway.fetchPiece, range.upperBound - offset)
                let answer = try await gateway.relayAnswer(
                    .fileFetch, of: id, to: host, FileQuery(file: file, offset: offset, length: length), session: session)
                guard answer.status == 200, UInt64(answer.body.count) == length else {
                    throw APIError(.peerInvalid, "\(host) did not send the file's bytes")
                }
                offset += length
                try await output(ByteBuffer(bytes: answer.body))
            }
        }
    }

    /// S6: this device fetched the file whole; whether it is now deleted (burn-on-read).
    func fetched(_ id: ConversationID, _ file: FileID, session: Session) async throws -> [String: Bool] {
        guard let host = try await gateway.remoteHost(id, session: session) else {
            return ["deleted": try await files.fetched(id, file, requester: session.requester)]
        }
        return try await gateway.relay(.fileFetched, of: id, to: host, FileQuery(file: file), session: session, as: [String: Bool].self).0
    }

    /// S2, S4 for this network's user when another network hosts the file.
    private func checkOwnPolicy(size: UInt64, session: Session, download: Bool) async throws {
        guard let own = try await files.policy.policies(of: [session.user.name])[session.user.name] else { throw APIError.unauthenticated }
        try PolicyRules.checkFile(size: size, own, download: download)
    }
}
