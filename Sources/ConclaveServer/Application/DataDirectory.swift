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

    public struct Settings: Codable, Sendable {
        public var network: NetworkDomain
        public var listen: String
        /// SHA-256 (hex) of the admin token; the token itself is only in admin.token.
        public var adminTokenSha256: String
        public var sessionLifetimeSeconds: Int
        /// A PostgreSQL URL; nil for the embedded SQLite database.
        public var postgres: String?
    }

    public enum Failure: Error, CustomStringConvertible {
        case alreadyInitialised(String)
        case notInitialised(String)
        case unreadable(String)

        public var description: String {
            switch self {
            case .alreadyInitialised(let path): "\(path) is already initialised (conclave.json exists); refusing to overwrite it"
            case .notInitialised(let path):
                "\(path) is not a Conclave data directory: run `conclave server init --data \(path) --network DOMAIN` first"
            case .unreadable(let what): "cannot read \(what)"
            }
        }
    }

    /// Creates the directory's files. Returns the admin token.
    @discardableResult
    public func initialise(network: NetworkDomain, listen: String, postgres: String? = nil) throws -> String {
        let files = FileManager.default
        guard !files.fileExists(atPath: configurationFile) else { throw Failure.alreadyInitialised(path) }
        try files.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let key = NetworkSigningKey.generate(domain: network)
        try writePrivate(Data(key.seed).base64EncodedString() + "\n", to: networkKeyFile)
        let token = Tokens.random()
        try writePrivate(token + "\n", to: adminTokenFile)
        let settings = Settings(
            network: network, listen: listen, adminTokenSha256: Hex.encode(Tokens.hash(token)), sessionLifetimeSeconds: 30 * 24 * 3600,
            postgres: postgres)
        let encoder = ConclaveJSON.encoder()
        encoder.outputFormatting.insert(.prettyPrinted)
        try writePrivate(String(decoding: try encoder.encode(settings), as: UTF8.self) + "\n", to: configurationFile)
        return token
    }

    public func settings() throws -> Settings {
        guard let data = FileManager.default.contents(atPath: configurationFile) else { throw Failure.notInitialised(path) }
        do { return try ConclaveJSON.decoder().decode(Settings.self, from: data) } catch { throw Failure.unreadable("conclave.json") }
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
