import AsyncHTTPClient
import ConclaveProtocol
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// Raw HTTP requests, as a modified client (or an attacker) would send them.
struct RawHTTP {
    let baseURL: String

    struct Answer {
        let status: Int
        let body: Data

        var error: APIErrorBody.Detail? { try? ConclaveJSON.decoder().decode(APIErrorBody.self, from: body).error }
        func decode<T: Decodable>(_ type: T.Type) throws -> T { try ConclaveJSON.decoder().decode(T.self, from: body) }
    }

    func send(
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
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        return Answer(status: Int(response.status.code), body: Data(body.readableBytesView))
    }

    /// Checks a refusal: the status, and a JSON error body with a code.
    func expectRefusal(_ answer: Answer, _ status: Int, code: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(answer.status == status, sourceLocation: sourceLocation)
        #expect(answer.error != nil, "no JSON error body", sourceLocation: sourceLocation)
        if let code { #expect(answer.error?.code == code, sourceLocation: sourceLocation) }
    }
}
