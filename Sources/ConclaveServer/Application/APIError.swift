import ConclaveProtocol
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An API error: one of the closed set of ``ErrorCode``s (which fixes the
/// HTTP status) and a human message, sent as `{"error": {"code", "message",
/// …}}`. Messages never quote user content.
public struct APIError: Error, HTTPResponseError, Sendable, CustomStringConvertible, Equatable {
    public let code: ErrorCode
    public let message: String
    public var currentEpoch: UInt64?
    public var conversation: ConversationID?
    /// Seconds after which a rate-limited request may be tried again.
    public var retryAfter: Int?
    /// The methods a path has, for a `405` (the `Allow` header).
    public var allow: [String]?

    public init(
        _ code: ErrorCode, _ message: String, currentEpoch: UInt64? = nil, conversation: ConversationID? = nil, retryAfter: Int? = nil
    ) {
        self.code = code
        self.message = message
        self.currentEpoch = currentEpoch
        self.conversation = conversation
        self.retryAfter = retryAfter
    }

    public var status: HTTPResponse.Status { HTTPResponse.Status(code: code.status) }
    public var description: String { "\(code.status) \(code.rawValue)" }
    public var body: APIErrorBody {
        APIErrorBody(.init(code: code, message: message, currentEpoch: currentEpoch, conversation: conversation))
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        // Every 429 says when to try again (1 s when its cause gave no time).
        if let wait = retryAfter ?? (code == .rateLimited ? 1 : nil) { headers[.retryAfter] = String(wait) }
        if let allow { headers[.allow] = allow.joined(separator: ", ") }
        return Response(
            status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try ConclaveJSON.encoder().encode(body))))
    }

    public static func == (lhs: APIError, rhs: APIError) -> Bool { lhs.code == rhs.code }

    static func badRequest(_ message: String) -> APIError { APIError(.badRequest, message) }
    static func invalidMessage(_ message: String) -> APIError { APIError(.invalidMLSMessage, message) }
    static let unauthenticated = APIError(.unauthenticated, "a valid session token is required")
    static let devicePending = APIError(
        .devicePending, "this device waits for approval: run `conclave device approve CODE` on one of your other devices")
    static func notFound(_ what: String) -> APIError { APIError(.notFound, "\(what) not found") }
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
            if error.status == .notFound {
                // A path the API has, named with a method it does not have: 405 with the methods it has.
                let allowed = OpenAPIDocument.methods(ofPath: request.uri.path)
                if !allowed.isEmpty, !allowed.contains(request.method.rawValue) {
                    var refusal = APIError(.methodNotAllowed, "\(request.method.rawValue) is not a method of this path")
                    refusal.allow = allowed
                    throw refusal
                }
            }
            throw APIError(
                Self.code(for: error.status), error.status.code < 500 ? (error.body ?? error.status.reasonPhrase) : "internal error")
        } catch let error as any HTTPResponseError {
            throw APIError(Self.code(for: error.status), error.status.code < 500 ? error.status.reasonPhrase : "internal error")
        } catch {
            context.logger.error("request failed", metadata: ["error.type": "\(type(of: error))"])
            throw APIError(.internal, "internal error")
        }
    }

    /// The code of a framework error, by its status.
    static func code(for status: HTTPResponse.Status) -> ErrorCode {
        switch status {
        case .notFound: .notFound
        case .contentTooLarge: .tooLarge
        case .methodNotAllowed: .methodNotAllowed
        case .unauthorized: .unauthenticated
        case .tooManyRequests: .rateLimited
        default: status.code < 500 ? .badRequest : .internal
        }
    }
}
