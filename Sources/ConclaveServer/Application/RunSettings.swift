import Configuration
import Foundation
import Logging

/// How `conclave server run` is set up, from three layers read through
/// swift-configuration: a command-line flag wins over an environment
/// variable (`CONCLAVE_…`), which wins over the data directory's
/// `conclave.json`, which wins over the default. docs/operations.md lists
/// every key.
public struct RunSettings: Sendable {
    public enum LogFormat: String, Sendable, CaseIterable {
        case text, json
    }

    public var listen: (host: String, port: Int)
    public var publicURL: String?
    public var postgres: String?
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    public var tls: TLSFiles?
    public var metricsListen: (host: String, port: Int)?
    /// Where shared files' bytes live; nil: the data directory's `blobs/`.
    public var blobDirectory: String?
    public var console: ConsolePlacement

    /// A setting: its key (as conclave.json spells it), flag and environment variable.
    public struct Key: Sendable {
        public let name: String
        public var flag: String { "--" + name.replacingOccurrences(of: "_", with: "-") }
        public var environment: String { "CONCLAVE_" + name.uppercased() }
        /// Where a value may have come from, for error messages.
        var sources: String { "\(flag), \(environment) or `\(name)` in conclave.json" }

        static let listen = Key(name: "listen")
        static let publicURL = Key(name: "public_url")
        static let postgres = Key(name: "postgres")
        static let logLevel = Key(name: "log_level")
        static let logFormat = Key(name: "log_format")
        static let tlsCertificate = Key(name: "tls_certificate")
        static let tlsKeyFile = Key(name: "tls_key")
        static let metricsListen = Key(name: "metrics_listen")
        static let blobDirectory = Key(name: "blob_dir")
        static let consoleListen = Key(name: "console_listen")
        public static let all: [Key] = [
            listen, publicURL, postgres, logLevel, logFormat, tlsCertificate, tlsKeyFile, metricsListen, blobDirectory, consoleListen,
        ]
    }

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// Resolves the settings. `flags` holds the values given on the command
    /// line by key name (`public_url`); `environment` is the process's.
    public static func resolve(flags: [String: String], environment: [String: String], file: DataDirectory.Settings) throws(Invalid)
        -> RunSettings
    {
        var fileValues: [String: String?] = [
            Key.listen.name: file.listen, Key.publicURL.name: file.publicUrl, Key.postgres.name: file.postgres,
            Key.logLevel.name: file.logLevel, Key.logFormat.name: file.logFormat, Key.tlsCertificate.name: file.tlsCertificate,
            Key.tlsKeyFile.name: file.tlsKey, Key.metricsListen.name: file.metricsListen, Key.blobDirectory.name: file.blobDir,
            Key.consoleListen.name: file.consoleListen,
        ]
        fileValues = fileValues.filter { $0.value != nil }
        func provider(_ name: String, _ values: [String: String]) -> InMemoryProvider {
            InMemoryProvider(
                name: name,
                values: Dictionary(
                    uniqueKeysWithValues: values.map { key, value in
                        (AbsoluteConfigKey([key]), ConfigValue(.string(value), isSecret: key == Key.postgres.name))
                    }))
        }
        // An empty value counts as unset: the next layer's applies.
        let reader = ConfigReader(providers: [
            provider("flags", flags.filter { !$0.value.isEmpty }),
            EnvironmentVariablesProvider(environmentVariables: environment.filter { !$0.value.isEmpty }).prefixKeys(with: "conclave"),
            provider("conclave.json", fileValues.compactMapValues { $0 }.filter { !$0.value.isEmpty }),
        ])
        func value(_ key: Key) -> String? { reader.string(forKey: ConfigKey([key.name]), isSecret: key.name == Key.postgres.name) }
        func address(_ key: Key, _ text: String) throws(Invalid) -> (host: String, port: Int) {
            guard let address = parseListen(text) else {
                throw Invalid(description: "\(key.sources) must be HOST:PORT, e.g. 127.0.0.1:8080")
            }
            return address
        }

        let listen = try address(.listen, value(.listen) ?? "127.0.0.1:8080")
        let publicURL = try value(.publicURL).map { text throws(Invalid) in
            guard let url = URL(string: text), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host?.isEmpty == false,
                url.query == nil, url.fragment == nil, url.path.isEmpty || url.path == "/"
            else {
                throw Invalid(
                    description: "\(Key.publicURL.sources) must be http(s)://host[:port] with no path, e.g. https://chat.acme.example")
            }
            return text.hasSuffix("/") ? String(text.dropLast()) : text
        }
        let levelText = value(.logLevel) ?? "info"
        guard let logLevel = Logger.Level(rawValue: levelText) else {
            throw Invalid(
                description: "\(Key.logLevel.sources) must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let formatText = value(.logFormat) ?? "text"
        guard let logFormat = LogFormat(rawValue: formatText) else {
            throw Invalid(description: "\(Key.logFormat.sources) must be text or json")
        }
        let tls: TLSFiles?
        switch (value(.tlsCertificate), value(.tlsKeyFile)) {
        case (nil, nil): tls = nil
        case (let certificate?, let key?): tls = TLSFiles(certificateChain: certificate, privateKey: key)
        default:
            throw Invalid(
                description: "TLS needs both a certificate chain (\(Key.tlsCertificate.flag)) and its key (\(Key.tlsKeyFile.flag))")
        }
        let metricsListen = try value(.metricsListen).map { text throws(Invalid) in try address(.metricsListen, text) }
        if let metricsListen, metricsListen == listen {
            throw Invalid(description: "\(Key.metricsListen.flag) must differ from the main listen address")
        }
        var console = ConsolePlacement.mainListener
        if let text = value(.consoleListen) {
            if text == "off" {
                console = .off
            } else {
                guard let address = parseListen(text) else {
                    throw Invalid(description: "\(Key.consoleListen.sources) must be HOST:PORT (e.g. 10.0.0.5:8443) or off")
                }
                guard address != listen, metricsListen.map({ $0 != address }) ?? true else {
                    throw Invalid(description: "\(Key.consoleListen.flag) must differ from the other listen addresses")
                }
                console = .listener(host: address.host, port: address.port)
            }
        }
        if let blobs = value(.blobDirectory), !blobs.hasPrefix("/") {
            throw Invalid(description: "\(Key.blobDirectory.sources) must be an absolute path")
        }
        return RunSettings(
            listen: listen, publicURL: publicURL, postgres: value(.postgres), logLevel: logLevel, logFormat: logFormat, tls: tls,
            metricsListen: metricsListen, blobDirectory: value(.blobDirectory), console: console)
    }
}
