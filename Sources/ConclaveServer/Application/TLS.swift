import Foundation
import Logging
import NIOSSL
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Where the server's certificate chain and private key are (PEM files).
public struct TLSFiles: Sendable, Equatable {
    public var certificateChain: String
    public var privateKey: String

    public init(certificateChain: String, privateKey: String) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }
}

/// Why the certificate files cannot be used: which file, and why.
public struct TLSFilesError: Error, CustomStringConvertible {
    public let description: String
}

/// The server's TLS context, read from its files at start and again on
/// ``reload()``: connections accepted after a reload use the new
/// certificate; open connections keep theirs.
final class TLSCertificates: Sendable {
    let files: TLSFiles
    private let current: Mutex<NIOSSLContext>

    init(files: TLSFiles, logger: Logger) throws {
        self.files = files
        current = Mutex(try Self.context(files))
    }

    var context: NIOSSLContext { current.withLock { $0 } }

    /// Reads the files again; on a failure (a half-written renewal, a key
    /// that does not match) the server keeps the previous context.
    func reload() throws {
        let context = try Self.context(files)
        current.withLock { $0 = context }
    }

    private static func context(_ files: TLSFiles) throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(files.certificateChain) } catch {
            throw TLSFilesError(description: "cannot read a PEM certificate chain from \(files.certificateChain)")
        }
        guard !chain.isEmpty else { throw TLSFilesError(description: "\(files.certificateChain) holds no certificate") }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: files.privateKey, format: .pem) } catch {
            throw TLSFilesError(description: "cannot read a PEM private key from \(files.privateKey)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw TLSFilesError(description: "the certificate in \(files.certificateChain) does not go with the key in \(files.privateKey)")
        }
    }
}

/// Logs, at notice, that a graceful shutdown began (SIGTERM, SIGINT).
struct ShutdownAnnouncer: Service {
    let logger: Logger

    func run() async throws {
        do {
            try await gracefulShutdown()
            logger.notice("shutting down: finishing requests in flight, closing connections")
        } catch is CancellationError {}
    }
}

/// Re-reads the certificate and key on SIGHUP (a renewal's deploy hook
/// sends it), logging the outcome. Without TLS the signal is taken and
/// logged too: a SIGHUP (`systemctl reload`) never stops the server.
struct TLSReloader: Service {
    let certificates: TLSCertificates?
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            guard let certificates else {
                logger.notice("SIGHUP: nothing to reload (no TLS certificate configured)")
                continue
            }
            do {
                try certificates.reload()
                logger.notice("TLS certificate and key reloaded", metadata: ["certificate": "\(certificates.files.certificateChain)"])
            } catch {
                logger.error("TLS reload failed; the previous certificate stays in use", metadata: ["reason": "\(error)"])
            }
        }
    }
}
