import ConclaveProtocol
import Foundation

/// The server's data directory: `conclave.json` (configuration),
/// `network.key` (the network's signing key, 0600), `admin.token` (the
/// bootstrap administrator token, 0600) and, with embedded storage,
/// `conclave.sqlite`.
public struct DataDirectory: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public var configurationFile: String { path + "/conclave.json" }
    public var networkKeyFile: String { path + "/network.key" }
    public var adminTokenFile: String { path + "/admin.token" }
    public var sqliteFile: String { path + "/conclave.sqlite" }
    /// Shared files' sealed bytes, unless `blob_dir` says elsewhere.
    public var blobDirectory: String { path + "/blobs" }

    public struct Settings: Codable, Sendable {
        public var network: NetworkDomain
        public var listen: String
        /// SHA-256 (hex) of the admin token; the token itself is only in admin.token.
        public var adminTokenSha256: String
        public var sessionLifetimeSeconds: Int
        /// A PostgreSQL URL; nil for the embedded SQLite database.
        public var postgres: String?
        /// Limits that differ from the defaults (docs/admin-guide.md); nil: all defaults.
        public var limits: ServerLimits?
        /// Hosts an unlisted network may name with a plain-http URL, or off
        /// its domain, in open federation mode: for tests on loopback only.
        public var federationInsecureHosts: [String]?
        /// Addresses of reverse proxies whose `X-Forwarded-For` names the client.
        public var trustedProxies: [String]?
        /// Operator settings that the environment and flags override
        /// (``RunSettings``; docs/operations.md#configuration).
        public var publicUrl: String?
        public var logLevel: String?
        public var logFormat: String?
        public var tlsCertificate: String?
        public var tlsKey: String?
        public var metricsListen: String?
        public var blobDir: String?
        public var consoleListen: String?
    }

    public enum Failure: Error, CustomStringConvertible {
        case alreadyInitialised(String)
        case notInitialised(String)
        case unreadable(String)
        case invalid(String)

        public var description: String {
            switch self {
            case .alreadyInitialised(let path): "\(path) is already initialised (conclave.json exists); refusing to overwrite it"
            case .notInitialised(let path):
                "\(path) is not a Conclave data directory: run `conclave server init --data \(path) --network DOMAIN` first"
            case .unreadable(let what): "cannot read \(what)"
            case .invalid(let what): what
            }
        }
    }

    /// Creates the directory's files. Returns the admin token.
    @discardableResult
    public func initialise(network: NetworkDomain, listen: String, postgres: String? = nil) throws -> String {
        let files = FileManager.default
        guard !files.fileExists(atPath: configurationFile) else { throw Failure.alreadyInitialised(path) }
        try Self.makeDirectory(path)
        let key = NetworkSigningKey.generate(domain: network)
        try writePrivate(Data(key.seed).base64EncodedString() + "\n", to: networkKeyFile)
        let token = Tokens.random()
        try writePrivate(token + "\n", to: adminTokenFile)
        let settings = Settings(
            network: network, listen: listen, adminTokenSha256: Hex.encode(Tokens.hash(token)), sessionLifetimeSeconds: 30 * 24 * 3600,
            postgres: postgres)
        try write(settings)
        return token
    }

    /// Rewrites `conclave.json` with `change` applied (tools and
    /// benchmarks that set limits before the server starts).
    public func update(_ change: (inout Settings) -> Void) throws {
        var settings = try settings()
        change(&settings)
        try write(settings)
    }

    private func write(_ settings: Settings) throws {
        let encoder = ConclaveJSON.encoder()
        encoder.outputFormatting.insert(.prettyPrinted)
        try writePrivate(String(decoding: try encoder.encode(settings), as: UTF8.self) + "\n", to: configurationFile)
    }

    public func settings() throws -> Settings {
        guard let data = FileManager.default.contents(atPath: configurationFile) else { throw Failure.notInitialised(path) }
        do { return try ConclaveJSON.decoder().decode(Settings.self, from: data) } catch let error as DecodingError {
            throw Failure.invalid("conclave.json: \(Self.describe(error))")
        } catch { throw Failure.unreadable("conclave.json") }
    }

    /// Creates a directory and its missing parents (mode 0700), failing
    /// with the system's words ("Permission denied", "Not a directory").
    static func makeDirectory(_ path: String) throws(Failure) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            guard mkdir(current, 0o700) == 0 || errno == EEXIST else {
                throw Failure.invalid("cannot create \(path): \(String(cString: strerror(errno)))")
            }
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Failure.invalid("cannot create \(path): a file of that name exists")
        }
    }

    /// A key as the file spells it (`maxMessageBytes` is `max_message_bytes`).
    static func snakeCase(_ key: String) -> String {
        key.reduce(into: "") { text, character in
            if character.isUppercase {
                text += "_" + character.lowercased()
            } else {
                text.append(character)
            }
        }
    }

    /// Which key is wrong in a configuration file, and why.
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map(String.init) ?? snakeCase($0.stringValue) }.joined(separator: ".")
        }
        switch error {
        case .dataCorrupted(let context): return "\(path(context)): \(context.debugDescription)"
        case .keyNotFound(let key, _): return "\(snakeCase(key.stringValue)) is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "\(path(context)) has the wrong type"
        @unknown default: return "not valid JSON of the expected shape"
        }
    }

    public var lockFile: String { path + "/conclave.lock" }

    /// An exclusive lock on the directory, held while the process lives
    /// (released by the kernel when it exits, however it exits).
    public final class Lock: Sendable {
        private let descriptor: Int32

        fileprivate init(descriptor: Int32) { self.descriptor = descriptor }

        deinit { close(descriptor) }
    }

    /// Takes the directory's lock, or fails at once when another process
    /// holds it.
    public func lock() throws -> Lock {
        let descriptor = open(lockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw Failure.unreadable("\(lockFile) (\(String(cString: strerror(errno))))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            close(descriptor)
            throw Failure.invalid(
                busy
                    ? "\(path) is in use by another `conclave server run` (\(lockFile) is locked); stop that one first"
                    : "cannot lock \(lockFile)")
        }
        return Lock(descriptor: descriptor)
    }

    public func networkKey(domain: NetworkDomain) throws -> NetworkSigningKey {
        guard let data = FileManager.default.contents(atPath: networkKeyFile),
            let seed = Data(base64Encoded: String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)),
            let key = try? NetworkSigningKey(domain: domain, seed: Array(seed))
        else { throw Failure.unreadable("network.key") }
        return key
    }

    private func writePrivate(_ text: String, to file: String) throws {
        guard FileManager.default.createFile(atPath: file, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw Failure.unreadable(file)
        }
    }
}
