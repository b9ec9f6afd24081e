import AsyncHTTPClient
import ConclaveProtocol
import ConclaveSupport
import Foundation
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file the server accepted and the message that shares it.
public struct SentFile: Sendable, Hashable {
    public let message: SentMessage
    public let file: SharedFile
    /// Members of this network whose security group will not let them
    /// download it (their own network checks members of other networks).
    public let cannotReceive: [UserAddress]
}

/// Encrypted file sharing (docs/client.md#files): the file is sealed on
/// this device with a fresh key ([`EncryptedFile`](docs/client.md#encrypted-files)),
/// uploaded to the conversation in pieces that resume after a lost
/// connection or a server restart, and shared by an MLS message carrying
/// its id, name, type, size, SHA-256 and key. Receivers fetch and open it
/// as a stream, checking every chunk, then its size and hash.
extension ConclaveClient {
    /// Bytes per upload request: a lost request costs at most this much again.
    static let uploadPiece = 8 << 20

    /// Sends the file at `path` (read as it is sealed, never whole in
    /// memory) with an optional caption. `progress` is told the sealed
    /// bytes the server holds, and the total.
    @discardableResult
    public func sendFile(
        at path: String, name: String? = nil, mediaType: String? = nil, caption: String = "", to id: ConversationID,
        progress: (@Sendable (_ sent: UInt64, _ total: UInt64) -> Void)? = nil
    ) async throws -> SentFile {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ClientError.file("cannot read \(path)") }
        defer { try? handle.close() }
        let size: UInt64
        do { size = try handle.seekToEnd() } catch { throw ClientError.file("cannot read \(path)") }
        try? handle.seek(toOffset: 0)
        // One chunk at a time: small buffers that the allocator reuses, sealed as they come.
        let chunks = AsyncThrowingStream<[UInt8], any Error> {
            guard let data = try handle.read(upToCount: EncryptedFile.chunkSize), !data.isEmpty else { return nil }
            return Array(data)
        }
        let fileName = name ?? URL(fileURLWithPath: path).lastPathComponent
        return try await sendFile(
            chunks, size: size, name: fileName, mediaType: mediaType ?? Self.mediaType(forName: fileName), caption: caption, to: id,
            progress: progress)
    }

    /// Sends a file given as a stream of bytes of `size` in all.
    @discardableResult
    public func sendFile<Content: AsyncSequence>(
        _ content: Content, size: UInt64, name: String, mediaType: String = "application/octet-stream", caption: String = "",
        to id: ConversationID, progress: (@Sendable (_ sent: UInt64, _ total: UInt64) -> Void)? = nil
    ) async throws -> SentFile where Content.Element == [UInt8] {
        guard !isPending else { throw ClientError.pendingApproval }
        guard size <= SecurityGroupPolicy.largestFileSize else { throw ClientError.file("a file is at most 1 TiB") }
        guard (1...1024).contains(name.utf8.count) else { throw ClientError.file("a file's name is 1 to 1024 bytes") }
        _ = try await joinedGroup(id)
        let api = try api
        let sealedSize = EncryptedFile.sealedSize(of: size)
        let upload: FileStatus = try await api.post("/v1/conversations/\(id)/files", CreateUpload(size: sealedSize))
        let sealer = EncryptedFile.Sealer()
        var uploader = PieceUploader(api: api, path: "/v1/conversations/\(id)/files/\(upload.id)", total: sealedSize, progress: progress)
        var read: UInt64 = 0
        for try await piece in content {
            read += UInt64(piece.count)
            guard read <= size else { throw ClientError.file("the file grew while it was being sent") }
            try sealer.append(piece)
            try await uploader.add(sealer.take())
        }
        let sealed = try sealer.finish()
        guard sealed.size == size else { throw ClientError.file("the file changed size while it was being sent") }
        try await uploader.add(sealer.take())
        try await uploader.finish()
        let file = SharedFile(
            id: upload.id, name: name, mediaType: mediaType, size: size, sha256: Base64Bytes(sealed.sha256), key: Base64Bytes(sealed.key))
        let message = try await lock.withLock {
            try await self.performSend(MessageBody(id: UUID().uuidString.lowercased(), text: caption, file: file), to: id)
        }
        return SentFile(message: message, file: file, cannotReceive: upload.cannotReceive ?? [])
    }

    /// A shared file's plaintext as it downloads (resuming with a range
    /// after a lost connection), each piece from a chunk that decrypted
    /// and authenticated. The sequence ends without error only once the
    /// whole file arrived with the size and SHA-256 its message states:
    /// until then, hold what it yields somewhere temporary. Once it is
    /// kept, ``fileFetched(_:in:)`` tells the server.
    public func fileContent(
        _ file: SharedFile, in id: ConversationID, progress: (@Sendable (_ received: UInt64, _ total: UInt64) -> Void)? = nil
    ) throws -> FileContent {
        FileContent(api: try api, path: "/v1/conversations/\(id)/files/\(file.id)/content", file: file, progress: progress)
    }

    /// Downloads and opens a shared file into `directory` under its
    /// sanitised name (``safeFileName(_:)``), never replacing a file there
    /// (`name (1).ext`, … instead). The file appears only once it is whole
    /// and verified; returns its path.
    public func saveFile(
        _ file: SharedFile, in id: ConversationID, to directory: String,
        progress: (@Sendable (_ received: UInt64, _ total: UInt64) -> Void)? = nil
    ) async throws -> String {
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch { throw ClientError.file("cannot create \(directory)") }
        let temporary = directory + "/.conclave-\(UUID().uuidString.lowercased()).part"
        let descriptor = Glibc.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw ClientError.file("cannot write in \(directory)") }
        var writer = FileWriter(descriptor: descriptor)
        do {
            for try await piece in try fileContent(file, in: id, progress: progress) { try await writer.write(piece) }
            try await writer.finish()
            Glibc.close(descriptor)
        } catch {
            try? await writer.settle()
            Glibc.close(descriptor)
            unlink(temporary)
            if let error = error as? ClientError { throw error }
            throw ClientError.file("cannot save the file: \(error)")
        }
        defer { unlink(temporary) }
        let name = Self.safeFileName(file.name)
        let (stem, suffix) = Self.split(name)
        for attempt in 0..<1000 {
            let candidate = directory + "/" + (attempt == 0 ? name : "\(stem) (\(attempt))\(suffix)")
            if link(temporary, candidate) == 0 {
                _ = try? await fileFetched(file, in: id)  // if this is lost, a burn-on-read file goes at its expiry instead
                return candidate
            }
            guard errno == EEXIST else { throw ClientError.file("cannot save the file in \(directory)") }
        }
        throw ClientError.file("\(directory) holds too many files named \(name)")
    }

    /// Tells the server this device has the whole file, verified and
    /// kept: under burn-on-read, the last recipient device's word deletes
    /// it there (S6). Returns whether it is gone.
    @discardableResult
    public func fileFetched(_ file: SharedFile, in id: ConversationID) async throws -> Bool {
        let answer: [String: Bool] = try await api.post("/v1/conversations/\(id)/files/\(file.id)/fetched")
        return answer["deleted"] ?? false
    }

    /// A name safe to show and to save under: its last path component,
    /// without control or formatting characters (bidirectional overrides),
    /// leading dots or surrounding spaces, at most 200 bytes; `file` when
    /// nothing is left.
    public nonisolated static func safeFileName(_ name: String) -> String {
        let last = name.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let visible = String(
            String.UnicodeScalarView(
                last.unicodeScalars.filter { scalar in
                    ![.control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .unassigned, .privateUse].contains(
                        scalar.properties.generalCategory)
                }))
        var cleaned = visible.trimmingCharacters(in: .whitespaces)
        while cleaned.hasPrefix(".") { cleaned.removeFirst() }
        cleaned = cleaned.trimmingCharacters(in: .whitespaces)
        var result = ""
        for character in cleaned {
            guard result.utf8.count + String(character).utf8.count <= 200 else { break }
            result.append(character)
        }
        return result.isEmpty ? "file" : result
    }

    /// `report.pdf` → (`report`, `.pdf`).
    nonisolated static func split(_ name: String) -> (String, String) {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return (name, "") }
        return (String(name[..<dot]), String(name[dot...]))
    }

    /// A media type for common file names; `application/octet-stream` otherwise.
    nonisolated static func mediaType(forName name: String) -> String {
        let types = [
            "txt": "text/plain", "md": "text/markdown", "csv": "text/csv", "json": "application/json", "pdf": "application/pdf",
            "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
            "mp4": "video/mp4", "mov": "video/quicktime", "mp3": "audio/mpeg", "zip": "application/zip", "gz": "application/gzip",
            "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ]
        return types[URL(fileURLWithPath: name).pathExtension.lowercased()] ?? "application/octet-stream"
    }
}

/// Uploads sealed bytes in pieces of ``ConclaveClient/uploadPiece``, one
/// in flight while the next is sealed. The server counts a piece only once
/// it is all on its disk, so after a lost connection it holds either the
/// piece or none of it: the status says which, and the piece (still in
/// memory) is sent again if needed.
struct PieceUploader {
    let api: HTTPAPI
    /// `/v1/conversations/ID/files/FILE`.
    let path: String
    let total: UInt64
    let progress: (@Sendable (UInt64, UInt64) -> Void)?
    private var piece = ByteBuffer()
    /// Bytes handed to a request so far.
    private var dispatched: UInt64 = 0
    private var inFlight: Task<(sent: UInt64, buffer: ByteBuffer), any Error>?
    /// The buffer of the last piece sent, filled again for the next one: two
    /// buffers serve the whole upload.
    private var spare: ByteBuffer?

    init(api: HTTPAPI, path: String, total: UInt64, progress: (@Sendable (UInt64, UInt64) -> Void)?) {
        self.api = api
        self.path = path
        self.total = total
        self.progress = progress
    }

    /// Each piece is one buffer of exactly ``ConclaveClient/uploadPiece``
    /// bytes, handed to its request as it is: two pieces are in memory at most.
    mutating func add(_ bytes: [UInt8]) async throws {
        var rest = bytes[...]
        while !rest.isEmpty {
            if piece.capacity == 0 {
                if var reused = spare {
                    reused.clear()
                    piece = reused
                    spare = nil
                } else {
                    piece = ByteBufferAllocator().buffer(capacity: ConclaveClient.uploadPiece)
                }
            }
            let room = ConclaveClient.uploadPiece - piece.readableBytes
            piece.writeBytes(rest.prefix(room))
            rest = rest.dropFirst(room)
            if piece.readableBytes == ConclaveClient.uploadPiece {
                let full = piece
                piece = ByteBuffer()
                try await dispatch(full)
            }
        }
    }

    mutating func finish() async throws {
        if piece.readableBytes > 0 || dispatched == 0 { try await dispatch(piece) }
        piece = ByteBuffer()
        let sent = try await inFlight?.value.sent ?? 0
        inFlight = nil
        spare = nil
        guard sent == total else { throw ClientError.file("the upload ended at \(sent) of \(total) bytes") }
    }

    /// Waits for the piece in flight, then sends this one.
    private mutating func dispatch(_ buffer: ByteBuffer) async throws {
        if let previous = inFlight { spare = try await previous.value.buffer }
        let (api, path, total, progress, offset) = (api, path, total, progress, dispatched)
        dispatched += UInt64(buffer.readableBytes)
        inFlight = Task {
            (try await Self.send(buffer, at: offset, api: api, path: path, total: total, progress: progress), buffer)
        }
    }

    /// Sends one piece, retrying with backoff (about a minute in all) while
    /// the server is unreachable or busy; the count the server then holds.
    private static func send(
        _ buffer: ByteBuffer, at offset: UInt64, api: HTTPAPI, path: String, total: UInt64,
        progress: (@Sendable (UInt64, UInt64) -> Void)?
    ) async throws -> UInt64 {
        let end = offset + UInt64(buffer.readableBytes)
        var delay: Duration = .milliseconds(250)
        for attempt in 1...12 {
            do {
                let status: FileStatus = try await api.putBytes("\(path)/content?offset=\(offset)", buffer)
                guard status.received == end else { throw ClientError.file("the server counted another part of the upload") }
                progress?(end, total)
                return end
            } catch let error as ClientError where Self.retryable(error) && attempt < 12 {
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(8))
                // The server holds the piece, or none of it: ask which.
                guard let status: FileStatus = try? await api.get(path) else { continue }
                if status.received == end {
                    progress?(end, total)
                    return end
                }
                guard status.received == offset else { throw ClientError.file("the server holds an unexpected part of the upload") }
            }
        }
        throw ClientError.file("the upload could not be completed")
    }

    static func retryable(_ error: ClientError) -> Bool {
        switch error {
        case .transport: true
        case .api(let status, let detail): status >= 500 || status == 429 || detail.code == .wrongOffset
        default: false
        }
    }
}

/// A shared file's plaintext as it downloads (``ConclaveClient/fileContent(_:in:progress:)``).
public struct FileContent: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    let api: HTTPAPI
    let path: String
    let file: SharedFile
    let progress: (@Sendable (UInt64, UInt64) -> Void)?

    public func makeAsyncIterator() -> Iterator { Iterator(content: self) }

    public struct Iterator: AsyncIteratorProtocol {
        let content: FileContent
        let total: UInt64
        var opener: EncryptedFile.Opener?
        var body: HTTPClientResponse.Body.AsyncIterator?
        var received: UInt64 = 0
        var failures = 0
        var done = false

        init(content: FileContent) {
            self.content = content
            self.total = EncryptedFile.sealedSize(of: content.file.size)
        }

        public mutating func next() async throws -> [UInt8]? {
            if opener == nil {
                do {
                    opener = try EncryptedFile.Opener(
                        key: content.file.key.bytes, size: content.file.size, sha256: content.file.sha256.bytes)
                } catch { throw ClientError.file("\(error)") }
            }
            guard let opener, !done else { return nil }
            while received < total {
                do {
                    if body == nil {
                        let response = try await content.api.download(content.path, from: received)
                        // A server whose copy is shorter or longer than the message states is not retried.
                        if let length = response.headers.first(name: "Content-Length").flatMap({ UInt64($0) }), length != total - received {
                            throw ClientError.file("refused: the server's copy is not the size the message states")
                        }
                        body = response.body.makeAsyncIterator()
                    }
                    let next: ByteBuffer?
                    do { next = try await body?.next() } catch { throw ClientError.transport("the download broke off") }
                    guard let buffer = next else {
                        body = nil
                        throw ClientError.transport("the download ended early")
                    }
                    received += UInt64(buffer.readableBytes)
                    guard received <= total else { throw ClientError.file("the server sent more bytes than the file has") }
                    content.progress?(received, total)
                    let plaintext: [UInt8]
                    do { plaintext = try opener.feed(buffer.readableBytesView) } catch {
                        throw ClientError.file("refused: \(error)")
                    }
                    if !plaintext.isEmpty { return plaintext }
                } catch let error as ClientError where PieceUploader.retryable(error) && failures < 12 {
                    body = nil
                    failures += 1
                    try await Task.sleep(for: .milliseconds(250 * (1 << Swift.min(failures, 5))))
                }
            }
            done = true
            let last: [UInt8]
            do { last = try opener.finish() } catch { throw ClientError.file("refused: \(error)") }
            return last.isEmpty ? nil : last
        }
    }
}

/// Writes a file a MiB at a time on a thread of its own, one MiB behind
/// the caller (which decrypts the next meanwhile), having the kernel start
/// writing each MiB to disk at once (``Writeback``); ``finish()`` then
/// syncs it, finding little left to do.
struct FileWriter {
    let descriptor: Int32
    private var buffer: [UInt8] = []
    private var offset: Int64 = 0
    private var pending: Task<Void, any Error>?

    init(descriptor: Int32) {
        self.descriptor = descriptor
        buffer.reserveCapacity(1 << 20)
    }

    mutating func write(_ bytes: [UInt8]) async throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 20 { try await flush() }
    }

    mutating func finish() async throws {
        try await flush()
        try await settle()
        guard fsync(descriptor) == 0 else { throw ClientError.file("cannot sync the file: \(String(cString: strerror(errno)))") }
    }

    /// Waits for the write in progress (before the descriptor is closed).
    mutating func settle() async throws {
        defer { pending = nil }
        try await pending?.value
    }

    private mutating func flush() async throws {
        guard !buffer.isEmpty else { return }
        try await settle()
        let (chunk, descriptor, position) = (buffer, descriptor, offset)
        offset += Int64(buffer.count)
        buffer = []
        buffer.reserveCapacity(1 << 20)
        pending = Task {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
                DispatchQueue.global(qos: .utility).async {
                    do {
                        try Self.writeAll(chunk, to: descriptor, at: position)
                        done.resume()
                    } catch { done.resume(throwing: error) }
                }
            }
        }
    }

    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32, at position: Int64) throws {
        var done = 0
        while done < bytes.count {
            let result = bytes.withUnsafeBytes { raw in
                guard let base = raw.baseAddress else { return 0 }
                return pwrite(descriptor, base + done, raw.count - done, off_t(position) + off_t(done))
            }
            guard result > 0 else {
                if result < 0, errno == EINTR { continue }
                throw ClientError.file("cannot write the file: \(String(cString: strerror(errno)))")
            }
            done += result
        }
        Writeback.start(descriptor, offset: position, count: bytes.count)
    }
}
