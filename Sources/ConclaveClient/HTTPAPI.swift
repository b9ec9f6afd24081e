import AsyncHTTPClient
import ConclaveProtocol
import Foundation
import NIOCore
import NIOHTTP1

/// The client API over HTTP + JSON.
struct HTTPAPI: Sendable {
    let baseURL: String
    var token: String?
    let http: HTTPClient

    init(baseURL: String, token: String?, http: HTTPClient = HTTPAPI.client) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.http = http
    }

    func get<Response: Decodable>(_ path: String, as type: Response.Type = Response.self) async throws -> Response {
        try await send(.GET, path, body: Optional<Empty>.none)
    }

    func post<Body: Encodable, Response: Decodable>(_ path: String, _ body: Body, as type: Response.Type = Response.self) async throws
        -> Response
    {
        try await send(.POST, path, body: body)
    }

    func post<Response: Decodable>(_ path: String, as type: Response.Type = Response.self) async throws -> Response {
        try await send(.POST, path, body: Optional<Empty>.none)
    }

    func patch<Body: Encodable, Response: Decodable>(_ path: String, _ body: Body, as type: Response.Type = Response.self) async throws
        -> Response
    {
        try await send(.PATCH, path, body: body)
    }

    func put<Body: Encodable, Response: Decodable>(_ path: String, _ body: Body, as type: Response.Type = Response.self) async throws
        -> Response
    {
        try await send(.PUT, path, body: body)
    }

    func delete<Response: Decodable>(_ path: String, as type: Response.Type = Response.self) async throws -> Response {
        try await send(.DELETE, path, body: Optional<Empty>.none)
    }

    struct Empty: Codable {}

    /// The SDK's HTTP client: a server that refuses the connection (down,
    /// wrong port) is reported at once, not after the request's 30 s of
    /// retried connection attempts; the retry that matters (a pooled
    /// connection to a server that restarted) is ``send(_:_:body:idempotent:)``'s.
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        // A connection that goes silent mid-answer (a file's body that stops) fails instead of waiting forever.
        configuration.timeout.read = .seconds(60)
        // Idle connections are let go before the server's 10 s keep-alive timeout closes them, so a
        // request rarely meets a connection the server is closing at that moment.
        configuration.connectionPool.idleTimeout = .seconds(5)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// A POST the server applies at most once however often it arrives
    /// (a message, by its id: D17), retried once when the connection fails.
    func postIdempotent<Body: Encodable, Response: Decodable>(_ path: String, _ body: Body, as type: Response.Type = Response.self)
        async throws -> Response
    {
        try await send(.POST, path, body: body, idempotent: true)
    }

    /// Sends a request. A request that may be repeated (GET, or one marked
    /// idempotent) is sent once more when the connection fails before an
    /// answer, as a pooled connection to a server that restarted does.
    func send<Body: Encodable, Response: Decodable>(_ method: HTTPMethod, _ path: String, body: Body?, idempotent: Bool = false)
        async throws -> Response
    {
        do {
            return try await sendOnce(method, path, body: body)
        } catch let failure as ConnectionFailure {
            guard idempotent || method == .GET else { throw ClientError.transport(failure.reason) }
            do { return try await sendOnce(method, path, body: body) } catch let again as ConnectionFailure {
                throw ClientError.transport(again.reason)
            }
        }
    }

    /// The connection failed before an answer came.
    private struct ConnectionFailure: Error {
        let reason: String
    }

    /// Why a connection failed, in words (not the type of an error).
    static func cause(of error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return "timed out while connecting"
            case .deadlineExceeded, .readTimeout: return "no answer in time"
            case .remoteConnectionClosed: return "the server closed the connection"
            case .invalidURL, .emptyHost, .emptyScheme: return "not a valid server URL"
            default: return "\(error)"
            }
        }
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        // NIO's connection errors list each address tried; the system's words are enough.
        let text = String(describing: error)
        for known in ["Connection refused", "Network is unreachable", "No route to host", "Connection reset by peer"]
        where text.contains(known) {
            return known.lowercased()
        }
        if text.contains("dnsAError") || text.contains("dnsAAAAError") || text.contains("NXDOMAIN") {
            return "the host name does not resolve"
        }
        if text.contains("NIOSSL") || text.contains("handshakeFailed") { return "TLS failed (\(text))" }
        return text
    }

    private func sendOnce<Body: Encodable, Response: Decodable>(_ method: HTTPMethod, _ path: String, body: Body?) async throws -> Response
    {
        var request = request(method, path)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try ConclaveJSON.encoder().encode(body)))
        }
        return try await answer(to: request, path: path, timeout: .seconds(30))
    }

    private func request(_ method: HTTPMethod, _ path: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        return request
    }

    private func answer<Response: Decodable>(to request: HTTPClientRequest, path: String, timeout: TimeAmount) async throws -> Response {
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: timeout)
            bytes = try await response.body.collect(upTo: 16 << 20)
        } catch {
            throw ConnectionFailure(reason: "\(baseURL): \(Self.cause(of: error))")
        }
        let data = Data(bytes.readableBytesView)
        try Self.check(response.status.code, data)
        do {
            return try ConclaveJSON.decoder().decode(Response.self, from: data)
        } catch {
            throw ClientError.transport("the server's answer to \(path) is not the expected JSON")
        }
    }

    /// A refusal as the API error it carries.
    private static func check(_ status: UInt, _ data: Data) throws {
        guard (200..<300).contains(status) else {
            if let error = try? ConclaveJSON.decoder().decode(APIErrorBody.self, from: data) {
                throw ClientError.api(status: Int(status), error.error)
            }
            throw ClientError.transport("HTTP \(status) without an API error body")
        }
    }

    /// Sends raw bytes with PUT (a piece of a file), once; a connection
    /// failure is ``ClientError/transport(_:)``.
    func putBytes<Response: Decodable>(_ path: String, _ bytes: ByteBuffer, as type: Response.Type = Response.self) async throws
        -> Response
    {
        var request = request(.PUT, path)
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        request.body = .bytes(bytes)
        do { return try await answer(to: request, path: path, timeout: .seconds(300)) } catch let failure as ConnectionFailure {
            throw ClientError.transport(failure.reason)
        }
    }

    /// Starts a download from `offset`: the response once it is 200 or 206,
    /// its body still to be read.
    func download(_ path: String, from offset: UInt64) async throws -> HTTPClientResponse {
        var request = request(.GET, path)
        if offset > 0 { request.headers.add(name: "Range", value: "bytes=\(offset)-") }
        let response: HTTPClientResponse
        do { response = try await http.execute(request, deadline: .distantFuture) } catch {
            throw ClientError.transport("\(baseURL): \(Self.cause(of: error))")
        }
        guard (200..<300).contains(response.status.code) else {
            let bytes = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
            try Self.check(response.status.code, Data(bytes.readableBytesView))
            throw ClientError.transport("unexpected answer")
        }
        guard (offset > 0 ? 206 : 200) == response.status.code else {
            throw ClientError.transport("the server did not answer the download's range")
        }
        return response
    }
}
