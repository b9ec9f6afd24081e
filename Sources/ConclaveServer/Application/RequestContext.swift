import ConclaveProtocol
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The request context: Hummingbird's core storage, the client's address
/// and the body limit.
public struct ConclaveRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    public var maxUploadSize: Int { 1 << 20 }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The client's IP address, as sign-in limits count it: the
    /// connection's peer, or, when that peer is a trusted reverse proxy,
    /// the nearest address in `X-Forwarded-For` that is not one (each proxy
    /// appends the address it was reached from, so entries further left
    /// are the client's own word).
    func clientAddress(of request: Request, trustedProxies: Set<String>) -> String {
        Self.clientAddress(
            peer: remoteAddress?.ipAddress, forwardedFor: request.headers[values: .xForwardedFor], trustedProxies: trustedProxies)
    }

    static func clientAddress(peer: String?, forwardedFor: [String], trustedProxies: Set<String>) -> String {
        guard var address = peer else { return "unknown" }
        var chain = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        while trustedProxies.contains(address), let previous = chain.popLast(), !previous.isEmpty, previous.utf8.count <= 64 {
            address = previous
        }
        return address
    }
}

extension HTTPField.Name {
    static let xForwardedFor = Self("X-Forwarded-For")!
}

typealias ConclaveRouter = Router<ConclaveRequestContext>

extension Request {
    /// The bearer token of the `Authorization` header, if it is one.
    var bearerToken: String? { ConclaveServer.bearerToken(authorization: headers[.authorization]) }

    /// Decodes a JSON body, answering 400 with a JSON error when it is not
    /// the expected shape, and 413 when it is over the context's limit.
    func decodeJSON<T: Decodable>(_ type: T.Type, context: some RequestContext) async throws -> T {
        let buffer = try await body.collect(upTo: context.maxUploadSize)
        return try JSONBody.decode(T.self, Array(buffer.readableBytesView))
    }

    /// An integer query parameter within `range`, or `value` when absent.
    func integerQuery(_ name: String, default value: Int64, range: ClosedRange<Int64>) throws -> Int64 {
        guard let text = uri.queryParameters.get(name) else { return value }
        guard let number = Int64(text), range.contains(number) else { throw APIError.badRequest("\(name) must be an integer in \(range)") }
        return number
    }
}

extension ConclaveRequestContext {
    /// A path parameter as the client meant it: percent-decoded
    /// (`bob%40acme.example` is `bob@acme.example`); a 400 when it does not decode.
    func pathParameter(_ name: String) throws -> String {
        let raw = try parameters.require(name)
        guard raw.utf8.contains(UInt8(ascii: "%")) else { return raw }  // nothing to decode (and no Foundation call)
        guard let value = raw.removingPercentEncoding else {
            throw APIError.badRequest("a path parameter is not valid percent-encoding")
        }
        return value
    }

    /// A path parameter parsed by `parse`, or a 400 naming what it should be.
    func parameter<T>(_ name: String, as what: String, _ parse: (String) -> T?) throws -> T {
        guard let value = parse(try pathParameter(name)) else { throw APIError.badRequest("not \(what)") }
        return value
    }

    var conversationID: ConversationID { get throws { try parameter("id", as: "a conversation id", ConversationID.init) } }
    var userName: UserName { get throws { try parameter("name", as: "a user name", UserName.init) } }
    /// The `:admin` parameter: an administrator's or API token's name.
    var adminName: AdminName { get throws { try parameter("admin", as: "an administrator or token name", AdminName.init) } }
}

/// JSON bodies in and out.
enum JSONBody {
    /// Decodes a request body, refusing what the OpenAPI document refuses
    /// (`additionalProperties: false`, no `null`s): a property the request
    /// type does not read back, or a `null`, is a 400 rather than ignored.
    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        if let flat = T.self as? any FlatJSONBody.Type {
            guard let value = try decodeFlat(flat, bytes) as? T else {
                throw APIError.badRequest("the body is not a valid \(T.self) JSON object")
            }
            return value
        }
        let value: T
        do { value = try ConclaveJSON.decoder().decode(T.self, from: Data(bytes)) } catch {
            throw APIError.badRequest("the body is not a valid \(T.self) JSON object")
        }
        if let encodable = value as? any Encodable {
            guard let given = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]),
                let read = try? JSONSerialization.jsonObject(with: ConclaveJSON.encoder().encode(encodable), options: [.fragmentsAllowed])
            else { throw APIError.badRequest("the body is not a valid \(T.self) JSON object") }
            if let problem = extraneous(given, read, path: "") { throw APIError.badRequest(problem) }
        }
        return value
    }

    /// A ``FlatJSONBody``: decoded, then its top-level properties read as
    /// they are in the body (a decoder without the key conversion, which
    /// would let `messageId` pass for `message_id`), with no re-encoding.
    private static func decodeFlat<T: FlatJSONBody>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        let data = Data(bytes)
        let value: T
        do { value = try ConclaveJSON.decoder().decode(T.self, from: data) } catch {
            throw APIError.badRequest("the body is not a valid \(T.self) JSON object")
        }
        do { _ = try JSONDecoder().decode(PropertyCheck<T>.self, from: data) } catch let problem as APIError {
            throw problem
        } catch {
            throw APIError.badRequest("the body is not a valid \(T.self) JSON object")
        }
        return value
    }

    /// Refuses a property that is not one of `T`'s, or a null.
    private struct PropertyCheck<T: FlatJSONBody>: Decodable {
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: PropertyName.self)
            for key in container.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
                if try container.decodeNil(forKey: key) { throw APIError.badRequest(nullProperty(key.stringValue)) }
                guard T.properties.contains(key.stringValue) else { throw APIError.badRequest(unknownProperty(key.stringValue)) }
            }
        }
    }

    /// ``PropertyCheck`` for a `T` inside another body (an object from
    /// `JSONSerialization`, whose keys are as written): a property that is
    /// not one of `T`'s, or a null, is a 400.
    static func checkProperties<T: FlatJSONBody>(of type: T.Type, in object: [String: Any]) throws {
        for key in object.keys.sorted() {
            if object[key] is NSNull { throw APIError.badRequest(nullProperty(key)) }
            guard T.properties.contains(key) else { throw APIError.badRequest(unknownProperty(key)) }
        }
    }

    /// Any property's name.
    private struct PropertyName: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// The refusal of a property the request does not take.
    static func unknownProperty(_ name: String) -> String {
        shown(name) ? "unknown property \(name)" : "the body has a property this request does not take"
    }

    /// The refusal of a null.
    static func nullProperty(_ name: String) -> String {
        shown(name) ? "\(name) must not be null: leave an absent value out" : "a property is null: leave absent values out"
    }

    /// Whether a property's name is safe to repeat in an error.
    private static func shown(_ name: String) -> Bool {
        name.utf8.count <= 64 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_.[]".contains($0)) }
    }

    /// The first property of `given` that `read` (the decoded value,
    /// encoded again) does not have, or a `null`.
    static func extraneous(_ given: Any, _ read: Any, path: String) -> String? {
        switch (given, read) {
        case (let given as [String: Any], let read as [String: Any]):
            for key in given.keys.sorted() {
                let name = path.isEmpty ? key : path + "." + key
                if given[key] is NSNull { return nullProperty(name) }
                guard let inner = read[key] else { return unknownProperty(name) }
                if let problem = extraneous(given[key] as Any, inner, path: name) { return problem }
            }
            return nil
        case (let given as [Any], let read as [Any]) where given.count == read.count:
            for (index, pair) in zip(given, read).enumerated() {
                if let problem = extraneous(pair.0, pair.1, path: "\(path)[\(index)]") { return problem }
            }
            return nil
        default:
            return nil
        }
    }
}

/// A request body whose JSON object has only scalars and arrays of scalars
/// (non-optional elements): checking its top-level properties is the whole
/// of ``JSONBody``'s check, without the generic check's parse into
/// Foundation objects and re-encoding. The message path's body is one.
protocol FlatJSONBody: Decodable {
    /// Every JSON property it has (RequestBodyTests checks them against its encoding).
    static var properties: Set<String> { get }
}

extension SendMessage: FlatJSONBody {
    static let properties: Set<String> = ["message_id", "message", "files"]
}

/// A JSON response body.
struct JSONResponse<Value: Encodable & Sendable>: ResponseGenerator {
    var status: HTTPResponse.Status
    let value: Value

    init(_ value: Value, status: HTTPResponse.Status = .ok) {
        self.value = value
        self.status = status
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        if let direct = (value as? any DirectJSON)?.directJSON {
            return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: direct)))
        }
        return Response(
            status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try ConclaveJSON.encoder().encode(value))))
    }
}

/// A response value whose JSON is written directly: the bytes
/// ``ConclaveJSON/encoder()`` writes (keys sorted), without its cost, or
/// nil when a value would need escaping (the encoder then writes it). The
/// message path's answer is one (RequestBodyTests).
protocol DirectJSON {
    var directJSON: String? { get }
}

extension MessageAccepted: DirectJSON {
    var directJSON: String? {
        guard messageId.utf8.allSatisfy(\.isASCIIIdentifier) else { return nil }
        var text = "{"
        if let expiresAt { text += "\"expires_at\":\"\(ConclaveJSON.formatTimestamp(expiresAt))\"," }
        return text + "\"message_id\":\"\(messageId)\",\"sent_at\":\"\(ConclaveJSON.formatTimestamp(sentAt))\"}"
    }
}

/// The token of an `Authorization: Bearer …` value, without the spaces
/// around it; nil for another scheme or a token over 256 bytes.
func bearerToken(authorization value: String?) -> String? {
    guard let value, value.hasPrefix("Bearer ") else { return nil }
    let bytes = value.utf8.dropFirst(7)
    let isSpace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 }
    guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) }) else { return nil }
    let token = bytes[first...last]
    return token.count > 256 ? nil : String(decoding: token, as: UTF8.self)
}
