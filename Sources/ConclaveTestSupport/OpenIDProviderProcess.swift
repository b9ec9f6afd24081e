import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

/// A real OpenID provider in a process of its own on 127.0.0.1: PyPI's
/// oidc-provider-mock behind scripts/oidc-test-provider.py (PKCE required,
/// `kid` in its RS256 ID tokens). `.ci/run` installs it into
/// `.build/test-venv`; `$CONCLAVE_OIDC_PYTHON` names another Python that
/// has it. A test signs a user in without a browser by posting `sub=NAME`
/// to the authorization URL. Stopped by its PID.
public final class OpenIDProviderProcess: Sendable {
    public let issuer: String
    private let process: Process

    private static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    private static var python: String {
        if let path = ProcessInfo.processInfo.environment["CONCLAVE_OIDC_PYTHON"], !path.isEmpty { return path }
        return packageRoot.appendingPathComponent(".build/test-venv/bin/python").path
    }

    /// Starts the provider, or returns nil (and says why; a test failure
    /// with `CONCLAVE_REQUIRE_OIDC=1`, as in CI) when it is not installed.
    public static func start(logDirectory: String) async throws -> OpenIDProviderProcess? {
        let script = packageRoot.appendingPathComponent("scripts/oidc-test-provider.py").path
        guard FileManager.default.isExecutableFile(atPath: python), FileManager.default.fileExists(atPath: script) else {
            let reason = "no Python with oidc-provider-mock at \(python) (.ci/run installs it; or set CONCLAVE_OIDC_PYTHON)"
            if ProcessInfo.processInfo.environment["CONCLAVE_REQUIRE_OIDC"] == "1" {
                Issue.record("the OpenID test provider is required: \(reason)")
            } else {
                print("OpenID test provider not available: \(reason); skipping")
            }
            return nil
        }
        return try await offThePool { try launch(script: script, logDirectory: logDirectory) }
    }

    private static func launch(script: String, logDirectory: String) throws -> OpenIDProviderProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script]
        let output = Pipe()
        process.standardOutput = output
        let log = logDirectory + "/openid-provider.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // The script binds its port before it prints it: the first line says where it listens.
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("port="), let port = Int(text.dropFirst(5)) else {
            process.terminate()
            process.waitUntilExit()
            throw TestSupportError("the OpenID test provider did not start (see \(log))")
        }
        return OpenIDProviderProcess(issuer: "http://127.0.0.1:\(port)", process: process)
    }

    private init(issuer: String, process: Process) {
        self.issuer = issuer
        self.process = process
    }

    /// Sets the claims of a user (its `sub`) for the ID tokens to come.
    public func setClaims(of subject: String, _ claims: [String: String]) async throws {
        var request = HTTPClientRequest(url: issuer + "/users/" + subject)
        request.method = .PUT
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: claims)))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        guard response.status.code < 300 else { throw TestSupportError("the provider answered \(response.status) to PUT /users") }
    }

    /// What a browser does: signs `subject` in at the authorization URL,
    /// then follows the provider's redirect to the device's loopback
    /// listener. Returns the redirect's URL.
    @discardableResult
    public func signIn(at authorizationURL: String, as subject: String) async throws -> String {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            var request = HTTPClientRequest(url: authorizationURL)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: "sub=" + subject))
            let response = try await client.execute(request, timeout: .seconds(30))
            guard response.status == .found, let location = response.headers.first(name: "Location") else {
                throw TestSupportError("the provider answered \(response.status) instead of a redirect")
            }
            _ = try await client.execute(HTTPClientRequest(url: location), timeout: .seconds(30))
            try await client.shutdown()
            return location
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// A new signing key; the old one stays published.
    public func rotateKey() async throws {
        var request = HTTPClientRequest(url: issuer + "/test/rotate-key")
        request.method = .POST
        _ = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
    }

    /// Kills the provider by its PID (it keeps no state worth a graceful
    /// stop, and uvicorn's graceful stop waits for idle keep-alive clients).
    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}
