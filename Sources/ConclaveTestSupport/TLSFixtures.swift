import AsyncHTTPClient
import Foundation
import NIOSSL

/// Certificates for the TLS tests, made with the system's `openssl`, and a
/// look at the certificate a server presents.
public enum TLSFixtures {
    /// A self-signed P-256 certificate for 127.0.0.1 and localhost, valid a day.
    public static func certificate(in directory: String, named name: String) throws -> (certificate: String, key: String) {
        let certificate = directory + "/\(name).crt.pem"
        let key = directory + "/\(name).key.pem"
        try openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", certificate, "-days",
            "1", "-subj", "/CN=\(name)", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        return (certificate, key)
    }

    /// The SHA-256 fingerprint of a PEM certificate file.
    public static func fingerprint(ofFile path: String) throws -> String {
        try openssl(["x509", "-in", path, "-noout", "-fingerprint", "-sha256"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The SHA-256 fingerprint of the certificate the server on `port` presents now.
    public static func servedFingerprint(port: Int) throws -> String {
        let pem = try openssl(["s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost"], input: "")
        guard let start = pem.range(of: "-----BEGIN CERTIFICATE-----"), let end = pem.range(of: "-----END CERTIFICATE-----") else {
            throw TestSupportError("no certificate from 127.0.0.1:\(port)")
        }
        let certificate = String(pem[start.lowerBound..<end.upperBound]) + "\n"
        return try openssl(["x509", "-noout", "-fingerprint", "-sha256"], input: certificate).trimmingCharacters(
            in: .whitespacesAndNewlines)
    }

    /// The status of `GET url` over HTTPS, trusting only `certificate`.
    public static func status(of url: String, trusting certificate: String) async throws -> Int {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(certificate)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: tls))
        do {
            let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            try await client.shutdown()
            return Int(response.status.code)
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    @discardableResult
    static func openssl(_ arguments: [String], input: String? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        let standardInput = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = standardInput
        try process.run()
        if let input { standardInput.fileHandleForWriting.write(Data(input.utf8)) }
        try standardInput.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        _ = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestSupportError("openssl \(arguments.first ?? "") failed") }
        return String(decoding: data, as: UTF8.self)
    }
}
