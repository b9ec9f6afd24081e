import Foundation
import Logging
import Synchronization

/// A log handler that appends every line to one file, as the server's
/// standard error would hold it: in-process test servers log there, so a
/// test can read what the server logged (and check that no secret or
/// message text is in it).
public struct FileLogHandler: LogHandler {
    private let sink: Sink
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .debug
    private let label: String

    /// A logger writing to `file` (created if missing).
    public static func logger(label: String, file: String, level: Logger.Level = .debug) -> Logger {
        let sink = Sink(file: file)
        var logger = Logger(label: label) { label in FileLogHandler(sink: sink, label: label) }
        logger.logLevel = level
        return logger
    }

    private init(sink: Sink, label: String) {
        self.sink = sink
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        sink.write("\(event.level) \(label) : \(fields) \(event.message)\n")
    }

    final class Sink: Sendable {
        private let handle: Mutex<FileHandle?>

        init(file: String) {
            if !FileManager.default.fileExists(atPath: file) { _ = FileManager.default.createFile(atPath: file, contents: nil) }
            let handle = FileHandle(forWritingAtPath: file)
            _ = try? handle?.seekToEnd()
            self.handle = Mutex(handle)
        }

        func write(_ line: String) { handle.withLock { $0?.write(Data(line.utf8)) } }
    }
}
