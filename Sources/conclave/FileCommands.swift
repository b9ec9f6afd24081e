import ArgumentParser
import ConclaveClient
import ConclaveProtocol
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension SendCommand {
    /// `send … --file PATH`: seals and uploads the file, then sends the
    /// message that shares it.
    func sendFile(_ path: String, caption: String, to conversation: Conversation, with client: ConclaveClient) async throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw ValidationError("\(path) is not a file")
        }
        let name = ConclaveClient.safeFileName(URL(fileURLWithPath: path).lastPathComponent)
        let bar = ProgressBar(label: "sending \(name)")
        let sent = try await client.sendFile(at: path, name: name, caption: caption, to: conversation.id, progress: bar.update)
        bar.done()
        for user in sent.cannotReceive {
            FileHandle.standardError.write(Data("warning: \(user) may not receive files of this size (security group policy)\n".utf8))
        }
        let message = sent.message
        if json {
            try printJSON(
                SentLine(
                    id: message.id, conversation: message.conversation, to: conversation.title,
                    recipients: message.recipients.map(\.description), file: FileLine(sent.file, path: nil, error: nil)))
        } else {
            let count = message.recipients.count
            print(
                "sent file \(name) (\(FileLine.size(sent.file.size))) as \(message.id) to \(conversation.title) (\(count) device\(count == 1 ? "" : "s"))"
            )
        }
    }
}

/// A file in `send --json` and `receive --json`: `file.name` (sanitised),
/// `file.size`, `file.media_type`, `file.sha256` (hex), and on receipt
/// `file.path` where it was saved, or `file.error` why it was not.
struct FileLine: Encodable {
    let name: String
    let size: UInt64
    let mediaType: String
    let sha256: String
    let path: String?
    let error: String?

    init(_ file: SharedFile, path: String?, error: String?) {
        name = ConclaveClient.safeFileName(file.name)
        size = file.size
        mediaType = file.mediaType
        sha256 = Hex.encode(file.sha256.bytes)
        self.path = path
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case name, size, mediaType, sha256, path, error
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(size, forKey: .size)
        try container.encode(mediaType, forKey: .mediaType)
        try container.encode(sha256, forKey: .sha256)
        try container.encode(path, forKey: .path)
        try container.encode(error, forKey: .error)
    }

    /// 1536 → "1.5 KiB".
    static func size(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}

/// What became of a received message's file.
enum FileOutcome: Sendable {
    case saved(String)
    /// Not downloaded, for a reason a retry does not change (policy, expired, damaged).
    case refused(String)
}

/// A one-line progress bar on standard error, shown only when it is a terminal.
final class ProgressBar: Sendable {
    let label: String
    let shown = isatty(STDERR_FILENO) == 1

    init(label: String) { self.label = label }

    var update: @Sendable (UInt64, UInt64) -> Void {
        { [self] done, total in
            guard shown, total > 0 else { return }
            let fraction = Double(done) / Double(total)
            let filled = Int(fraction * 30)
            let line =
                "\r\(label) [\(String(repeating: "#", count: filled))\(String(repeating: " ", count: 30 - filled))] "
                + "\(Int(fraction * 100))% \(FileLine.size(done)) of \(FileLine.size(total))"
            FileHandle.standardError.write(Data(line.utf8))
        }
    }

    func done() {
        if shown { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

extension EventPrinter {
    /// Saves a received message's file into the download directory. A
    /// failure a retry may fix (the server unreachable) is thrown: the
    /// event stays pending, and the next `receive` tries again.
    func download(_ message: ReceivedMessage, with client: ConclaveClient) async throws -> FileOutcome? {
        guard let file = message.file, let directory = downloadDirectory else { return nil }
        let bar = ProgressBar(label: "receiving \(ConclaveClient.safeFileName(file.name))")
        do {
            let path = try await client.saveFile(file, in: message.conversation, to: directory, progress: bar.update)
            bar.done()
            return .saved(path)
        } catch let error as ClientError {
            bar.done()
            switch error {
            case .transport: throw error
            case .api(let status, _) where status >= 500 || status == 429: throw error
            default: return .refused(error.description)
            }
        }
    }
}
