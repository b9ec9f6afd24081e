import ConclaveProtocol
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An API error: an HTTP status, a stable machine-readable `code` and a
/// human message, sent as `{"error": {"code", "message", …}}`. Messages
/// never quote user content.
public struct APIError: Error, HTTPResponseError, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var detail: APIErrorBody.Detail

    public init(
        _ status: HTTPResponse.Status, _ code: String, _ message: String, currentEpoch: UInt64? = nil, conversation: ConversationID? = nil
    ) {
        self.status = status
        detail = APIErrorBody.Detail(code: code, message: message, currentEpoch: currentEpoch, conversation: conversation)
    }

    public var description: String { "\(status.code) \(detail.code)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = try ConclaveJSON.encoder().encode(APIErrorBody(detail))
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func badRequest(_ message: String) -> APIError { APIError(.badRequest, "bad_request", message) }
    static func invalidMessage(_ message: String) -> APIError { APIError(.badRequest, "invalid_mls_message", message) }
    static let unauthenticated = APIError(.unauthorized, "unauthenticated", "a valid session token is required")
    static let forbidden = APIError(.forbidden, "forbidden", "this session may not do that")
    static func notFound(_ what: String) -> APIError { APIError(.notFound, "not_found", "\(what) not found") }
}

/// Turns every error into a JSON error body: ours as they are, Hummingbird's
/// (unknown route, body too large) with a code, anything else as a 500
/// whose details stay out of the response and the log.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as HTTPError {
            let code =
                switch error.status {
                case .notFound: "not_found"
                case .contentTooLarge: "too_large"
                case .methodNotAllowed: "method_not_allowed"
                case .unauthorized: "unauthenticated"
                default: error.status.code < 500 ? "bad_request" : "internal"
                }
            throw APIError(error.status, code, error.status.code < 500 ? (error.body ?? error.status.reasonPhrase) : "internal error")
        } catch let error as any HTTPResponseError {
            throw APIError(error.status, error.status.code < 500 ? "bad_request" : "internal", error.status.reasonPhrase)
        } catch {
            context.logger.error("request failed", metadata: ["error.type": "\(type(of: error))"])
            throw APIError(.internalServerError, "internal", "internal error")
        }
    }
}

extension Request {
    /// Decodes a JSON body, answering 400 with a JSON error when it is not
    /// the expected shape, and 413 when it is over the context's limit.
    func decodeJSON<T: Decodable>(_ type: T.Type, context: some RequestContext) async throws -> T {
        let buffer = try await body.collect(upTo: context.maxUploadSize)
        do {
            return try ConclaveJSON.decoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch {
            throw APIError.badRequest("the body is not a valid \(T.self) JSON object")
        }
    }
}

/// A JSON response body.
struct JSONResponse<Value: Encodable & Sendable>: ResponseGenerator {
    var status: HTTPResponse.Status = .ok
    let value: Value

    init(_ value: Value, status: HTTPResponse.Status = .ok) {
        self.value = value
        self.status = status
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = try ConclaveJSON.encoder().encode(value)
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
