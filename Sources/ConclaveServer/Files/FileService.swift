import ConclaveProtocol
import ConclaveStorage
import Foundation
import Logging
import NIOCore
import Synchronization

/// Shared files of the conversations hosted here (rules S1–S7 in
/// docs/server.md): resumable uploads of sealed bytes by a member device,
/// range downloads by the conversation's devices, security-group file
/// policy for this network's users, and deletion with the sharing message
/// (its lifetime, burn-on-read) or after an unshared upload's deadline.
/// The server holds sealed bytes only: name, type, key and hash travel in
/// an MLS message it cannot read.
final class FileService: Sendable {
    let store: ConclaveStore
    let identity: NetworkIdentity
    let clock: ServerClock
    let policy: PolicyService
    let blobs: BlobDirectory
    let limits: ServerLimits
    let logger: Logger
    /// Files with an upload in progress in this process (one at a time each).
    private let uploading = Mutex<Set<FileID>>([])

    init(
        store: ConclaveStore, identity: NetworkIdentity, clock: ServerClock, policy: PolicyService, blobs: BlobDirectory,
        limits: ServerLimits, logger: Logger
    ) {
        self.store = store
        self.identity = identity
        self.clock = clock
        self.policy = policy
        self.blobs = blobs
        self.limits = limits
        self.logger = logger
    }

    /// The smallest and largest sealed sizes (an empty file; 1 TiB).
    static let sizes = EncryptedFile.sealedSize(of: 0)...EncryptedFile.sealedSize(of: SecurityGroupPolicy.largestFileSize)

    /// S1, S2: starts an upload to a conversation of the requester's device.
    func create(_ id: ConversationID, _ request: CreateUpload, requester: Requester) async throws -> FileStatus {
        try await requireMember(id, requester)
        guard Self.sizes.contains(request.size) else {
            throw APIError.badRequest("size is the sealed file's size, \(Self.sizes.lowerBound) to \(Self.sizes.upperBound) bytes")
        }
        if let own = try await localPolicy(requester) { try PolicyRules.checkFile(size: request.size, own, download: false) }
        let now = Date(millis: clock.now.millis)
        let record = FileRecord(
            id: .random(), conversation: id, uploader: requester.fileReader.key, size: request.size, createdAt: now,
            expiresAt: uploadDeadline(from: now))
        try await store.createFile(record)
        // Who will be refused the download: this network's members whose group forbids files of this size.
        let members = try await store.memberUsers(id)
        let policies = try await store.policies(of: members)
        let refused = members.filter { name in
            guard let theirs = policies[name] else { return false }
            do { try PolicyRules.checkFile(size: request.size, theirs, download: true) } catch { return true }
            return false
        }
        return status(record, cannotReceive: refused.map(identity.address))
    }

    /// S1: a file of the conversation, as its devices see it.
    func status(_ id: ConversationID, _ file: FileID, requester: Requester) async throws -> FileStatus {
        status(try await memberFile(id, file, requester: requester))
    }

    /// S3: the next bytes of an upload, from `offset` (which must be the
    /// count the server holds), on disk before they count.
    func upload<Body: AsyncSequence>(
        _ id: ConversationID, _ file: FileID, offset: UInt64, body: Body, requester: Requester
    ) async throws -> FileStatus where Body.Element == ByteBuffer {
        var record = try await memberFile(id, file, requester: requester)
        guard record.uploader == requester.fileReader.key else {
            throw APIError(.forbidden, "only the device that started an upload sends its bytes")
        }
        guard record.messageID == nil, !record.complete else { throw APIError(.conflict, "the upload is complete") }
        if let own = try await localPolicy(requester) { try PolicyRules.checkFile(size: record.size, own, download: false) }
        guard offset == record.received else {
            throw APIError(.wrongOffset, "the server holds the first \(record.received) bytes of this file: send from there")
        }
        guard uploading.withLock({ $0.insert(file).inserted }) else {
            throw APIError(.conflict, "another upload of this file is in progress")
        }
        defer { uploading.withLock { _ = $0.remove(file) } }
        let written: UInt64
        do {
            written = try await blobs.write(file, at: offset, limit: record.size - offset, body: body)
        } catch BlobFailure.tooMany {
            throw APIError(.tooLarge, "the body holds more bytes than the upload has left (\(record.size - offset))")
        } catch let failure as BlobFailure {
            logger.error("a file's bytes cannot be written", metadata: ["error": "\(failure)"])
            throw APIError(.internal, "the file's bytes cannot be stored")
        }
        let deadline = uploadDeadline(from: clock.now)
        guard try await store.recordReceived(file, previous: offset, count: offset + written, deadline: deadline) else {
            throw APIError(.wrongOffset, "the upload changed meanwhile: read its status and send from there")
        }
        record.received = offset + written
        record.expiresAt = deadline
        return status(record)
    }

    /// S1, S4: what a download of `range` (a `Range` header) sends.
    func download(_ id: ConversationID, _ file: FileID, range: String?, requester: Requester) async throws -> (FileRecord, Range<UInt64>) {
        let record = try await memberFile(id, file, requester: requester)
        guard record.complete else { throw APIError(.fileIncomplete, "the file's upload is not complete") }
        if let own = try await localPolicy(requester) { try PolicyRules.checkFile(size: record.size, own, download: true) }
        return (record, try Self.byteRange(range, size: record.size))
    }

    /// S6: a device says it fetched the whole file and it checked out.
    /// Under burn-on-read the last reader's word deletes it; returns
    /// whether it is gone.
    func fetched(_ id: ConversationID, _ file: FileID, requester: Requester) async throws -> Bool {
        let record = try await memberFile(id, file, requester: requester)
        guard record.burn, record.messageID != nil else { return false }
        guard try await store.fileFetched(record.id, by: requester.fileReader) else { return false }
        blobs.delete(record.id)
        return true
    }

    /// S5: before a message shares files: each is this conversation's,
    /// complete, the sender device's, and not shared yet (or shared by this
    /// very message: a retry, answered as the first time).
    func checkShareable(_ files: [FileID], in id: ConversationID, messageID: String, requester: Requester) async throws {
        guard files.count <= 16, Set(files).count == files.count else {
            throw APIError.badRequest("a message shares at most 16 files, each once")
        }
        for file in files {
            guard let record = try await store.file(file), record.conversation == id else { throw APIError.notFound("file") }
            guard record.uploader == requester.fileReader.key else {
                throw APIError(.forbidden, "a message shares its sender's uploads only")
            }
            guard record.complete, record.messageID == nil || record.messageID == messageID else {
                throw APIError(.fileIncomplete, "a shared file must be completely uploaded, and shared by no other message")
            }
        }
    }

    /// S6: deletes what is past its time (and, once at start, bytes left
    /// without a row by a crash).
    func sweep(now: Date) async throws -> Int {
        let gone = try await store.sweepFiles(now: now)
        for file in gone { blobs.delete(file) }
        return gone.count
    }

    func removeOrphans() async throws {
        let stored = blobs.storedIDs()  // before the rows: an upload starting meanwhile has its row first
        let known = try await store.fileIDs()
        let orphans = stored.filter { !known.contains($0) }
        for file in orphans { blobs.delete(file) }
        if !orphans.isEmpty { logger.notice("deleted files left without a row", metadata: ["count": "\(orphans.count)"]) }
    }

    // MARK: Helpers

    /// S1: the requester's device is in the conversation, which is hosted
    /// here (a 404 otherwise, as for a conversation that does not exist).
    func requireMember(_ id: ConversationID, _ requester: Requester) async throws {
        guard try await store.conversationHost(id) == .local else { throw APIError.notFound("conversation") }
        let member =
            requester.isLocal
            ? try await store.memberDevices(id).contains { $0.device == requester.device }
            : try await store.remoteDevices(id).contains(requester.remoteDevice)
        guard member else { throw APIError.notFound("conversation") }
    }

    private func memberFile(_ id: ConversationID, _ file: FileID, requester: Requester) async throws -> FileRecord {
        try await requireMember(id, requester)
        guard let record = try await store.file(file), record.conversation == id else { throw APIError.notFound("file") }
        return record
    }

    /// A local requester's security group (another network checks its own users).
    private func localPolicy(_ requester: Requester) async throws -> SecurityGroupPolicy? {
        guard requester.isLocal else { return nil }
        return try await policy.policies(of: [requester.address.name])[requester.address.name]
    }

    private func uploadDeadline(from now: Date) -> Date {
        Date(millis: now.millis).addingTimeInterval(limits.uploadTimeoutSeconds)
    }

    private func status(_ record: FileRecord, cannotReceive: [UserAddress]? = nil) -> FileStatus {
        FileStatus(
            id: record.id, conversation: record.conversation, size: record.size, received: record.received,
            shared: record.messageID != nil, expiresAt: record.expiresAt, cannotReceive: cannotReceive)
    }

    /// A `Range: bytes=…` header's one range (RFC 9110 §14.1.2); the whole
    /// file when there is none, or it is not one byte range. A range that
    /// starts past the end is a 416.
    static func byteRange(_ header: String?, size: UInt64) throws -> Range<UInt64> {
        let whole = 0..<size
        guard let header, header.hasPrefix("bytes="), !header.contains(",") else { return whole }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard let dash = spec.firstIndex(of: "-") else { return whole }
        let (first, last) = (spec[..<dash], spec[spec.index(after: dash)...])
        if first.isEmpty {
            guard let suffix = UInt64(last), suffix > 0 else { return whole }
            return (size - min(suffix, size))..<size
        }
        guard let start = UInt64(first) else { return whole }
        guard start < size else { throw APIError(.rangeNotSatisfiable, "the file has \(size) bytes") }
        if last.isEmpty { return start..<size }
        guard let end = UInt64(last), end >= start else { return whole }
        return start..<min(end + 1, size)
    }
}

extension Requester {
    /// How files name this device: by id for this network's, by address and id for another's.
    var fileReader: FileReader { FileReader(device: device, user: isLocal ? nil : address) }
}
