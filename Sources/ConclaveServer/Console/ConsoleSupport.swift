import ConclaveProtocol
import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore

/// The parts of every console page: who is signed in, what they may see,
/// the CSRF token of its forms, and a notice or an error.
struct ConsoleChrome: Sendable {
    struct Nav: Sendable {
        var users: Bool
        var groups: Bool
        var federation: Bool
        var audit: Bool
        var settings: Bool
    }

    var title: String
    var admin: String
    var role: String
    var csrf: String
    var network: String
    var notice: String?
    var error: String?
    var nav: Nav
}

/// A page: its chrome and its own fields (docs/admin-guide.md#console).
struct ConsolePage<Body: Sendable>: Sendable {
    var chrome: ConsoleChrome
    var body: Body
}

/// An `application/x-www-form-urlencoded` body, at most 64 KiB, each name
/// once; anything else is refused before any action.
struct ConsoleForm: Sendable {
    static let maxBytes = 64 << 10
    private let fields: [String: String]

    init(fields: [String: String]) { self.fields = fields }

    static func read(_ request: Request) async throws -> ConsoleForm {
        guard let type = request.headers[.contentType], type.lowercased().hasPrefix("application/x-www-form-urlencoded") else {
            throw APIError.badRequest("a console form is sent as application/x-www-form-urlencoded")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxBytes)
        } catch {
            throw APIError(.tooLarge, "a console form is at most 64 KiB")
        }
        return try parse(String(decoding: buffer.readableBytesView, as: UTF8.self))
    }

    static func parse(_ text: String) throws -> ConsoleForm {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0]), let value = decode(parts.count > 1 ? parts[1] : ""), fields[name] == nil else {
                throw APIError.badRequest("the form is not well-formed")
            }
            fields[name] = value
        }
        return ConsoleForm(fields: fields)
    }

    private static func decode(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    /// A field's value, trimmed; nil when absent or empty.
    subscript(_ name: String) -> String? {
        guard let value = fields[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else { return nil }
        return value
    }

    /// A field as typed (passwords keep their spaces); nil when absent.
    func raw(_ name: String) -> String? { fields[name] }
}

/// How the console answers: HTML, redirects, and the session cookie (its
/// security headers are added to every answer by ``ConsoleErrorMiddleware``).
enum ConsoleResponse {
    static let cookieName = "conclave_console"
    /// The login form's CSRF token (double-submit: cookie and field agree).
    static let loginCookieName = "conclave_console_login"

    /// No script at all, styles and images from the console itself, forms
    /// post only to it, never framed.
    static let contentSecurityPolicy =
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    static func securityHeaders() -> HTTPFields {
        var headers = HTTPFields()
        headers[HTTPField.Name("Content-Security-Policy")!] = contentSecurityPolicy
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        headers[.cacheControl] = "no-store"
        return headers
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok, cookies: [Cookie] = []) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        var response = Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
        for cookie in cookies { response.setCookie(cookie) }
        return response
    }

    /// 303 See Other: after a form, the browser GETs the result.
    static func redirect(to location: String, cookies: [Cookie] = []) -> Response {
        var headers = HTTPFields()
        headers[.location] = location
        var response = Response(status: .seeOther, headers: headers)
        for cookie in cookies { response.setCookie(cookie) }
        return response
    }

    static func cookie(_ name: String, _ value: String, secure: Bool, maxAge: Int) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/admin", secure: secure, httpOnly: true, sameSite: .strict)
    }
}

/// A path segment as it goes into a console URL (names are `a-z 0-9 . _ -`
/// already; this keeps anything else from breaking out of the path).
func consolePath(_ segment: String) -> String { PercentEncoding.unreserved(segment) }

/// Every console answer gets the security headers (R7), and a request that
/// fails before a page could be rendered (a malformed path parameter, a
/// database error) gets a plain HTML page with the message, escaped.
struct ConsoleErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return Self.secured(try await next(request, context))
        } catch {
            let (status, message): (HTTPResponse.Status, String)
            switch error {
            case let error as APIError: (status, message) = (error.status, error.message)
            case let error as HTTPResponseError: (status, message) = (error.status, error.status.reasonPhrase)
            default: (status, message) = (.internalServerError, "the server could not answer; the error is in its log")
            }
            let page = """
                <!doctype html><html lang="en"><head><meta charset="utf-8"><title>\(status.code) · Conclave console</title>
                <link rel="stylesheet" href="/admin/static/console.css"></head>
                <body><main><h1>\(status.code)</h1><p id="error-message">\(htmlEscaped(message))</p><p><a href="/admin/">Back to the console</a></p></main></body></html>
                """
            return Self.secured(ConsoleResponse.html(page, status: status))
        }
    }

    private static func secured(_ response: Response) -> Response {
        var response = response
        for field in ConsoleResponse.securityHeaders() where response.headers[field.name] == nil { response.headers.append(field) }
        return response
    }
}

/// Text for HTML element content or a quoted attribute.
func htmlEscaped(_ text: String) -> String {
    var escaped = ""
    for character in text {
        switch character {
        case "&": escaped += "&amp;"
        case "<": escaped += "&lt;"
        case ">": escaped += "&gt;"
        case "\"": escaped += "&quot;"
        case "'": escaped += "&#39;"
        default: escaped.append(character)
        }
    }
    return escaped
}
