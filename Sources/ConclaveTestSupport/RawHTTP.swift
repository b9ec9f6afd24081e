import AsyncHTTPClient
import ConclaveProtocol
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// Raw HTTP requests, as a modified client (or an attacker) would send them.
public struct RawHTTP: Sendable {
    public let baseURL: String

    public init(baseURL: String) { self.baseURL = baseURL }

    public struct Answer: Sendable {
        public let status: Int
        public let body: Data
        /// The `Retry-After` header, in seconds.
        public var retryAfter: Int?
        /// Every response header.
        public var headers: HTTPHeaders = [:]

        public var error: APIErrorBody.Detail? { try? ConclaveJSON.decoder().decode(APIErrorBody.self, from: body).error }
        public func decode<T: Decodable>(_ type: T.Type) throws -> T { try ConclaveJSON.decoder().decode(T.self, from: body) }
    }

    public func send(
        _ method: HTTPMethod, _ path: String, token: String? = nil, json: (any Encodable)? = nil, raw: [UInt8]? = nil,
        headers: [(String, String)] = []
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try ConclaveJSON.encoder().encode(json)))
        } else if let raw {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: raw))
        }
        let response = try await Self.client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        return Answer(
            status: Int(response.status.code), body: Data(body.readableBytesView),
            retryAfter: response.headers.first(name: "Retry-After").flatMap { Int($0) }, headers: response.headers)
    }

    /// Idle connections are let go before the server's 10 s keep-alive
    /// timeout closes them (a request sent on a connection the server is
    /// closing at that moment fails with "I/O on closed channel").
    private static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.idleTimeout = .seconds(5)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// Checks a refusal: the status, and a JSON error body with a code.
    public func expectRefusal(_ answer: Answer, _ code: ErrorCode, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(answer.status == code.status, "HTTP \(answer.status), expected \(code.status) \(code)", sourceLocation: sourceLocation)
        #expect(answer.error != nil, "no JSON error body", sourceLocation: sourceLocation)
        #expect(answer.error?.code == code, sourceLocation: sourceLocation)
    }
}
