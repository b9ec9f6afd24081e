import AsyncHTTPClient
import ConclaveProtocol
import Foundation
import NIOCore
import NIOHTTP1

/// The administrators' web console as a browser without JavaScript sees
/// it, over real HTTP: it keeps the cookies the console sets, follows no
/// redirect (a test looks at each), posts forms, and reads the CSRF token
/// of the last page it fetched.
public actor ConsoleClient {
    public struct Page: Sendable {
        public let status: Int
        public let html: String
        public let headers: HTTPHeaders

        public var location: String? { headers.first(name: "Location") }
        /// The value of the first hidden `csrf` field of the page.
        public var csrf: String? { field("csrf") }

        /// The value of the first field named `name` (written `name="…" value="…"`, as the console's hidden fields are).
        public func field(_ name: String) -> String? {
            guard let range = html.range(of: "name=\"\(name)\" value=\"") else { return nil }
            let rest = html[range.upperBound...]
            return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
        }
        public var setCookies: [String] { headers[canonicalForm: "Set-Cookie"].map(String.init) }
    }

    public let baseURL: String
    /// One client for every console test (never shut down, like `HTTPClient.shared`), following no redirect.
    private static let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
    private var cookies: [String: String] = [:]
    /// The CSRF token of the last page fetched.
    public private(set) var csrf: String?

    public init(baseURL: String) { self.baseURL = baseURL }

    public func get(_ path: String, headers: [(String, String)] = []) async throws -> Page {
        try await send(.GET, path, body: nil, headers: headers)
    }

    /// Posts a form; with `csrf`, the last page's CSRF token is added first.
    public func post(
        _ path: String, _ fields: [(String, String)] = [], csrf withToken: Bool = true, headers: [(String, String)] = []
    ) async throws -> Page {
        var all = fields
        if withToken, let csrf { all.insert(("csrf", csrf), at: 0) }
        let body = all.map { "\(PercentEncoding.unreserved($0))=\(PercentEncoding.unreserved($1))" }.joined(separator: "&")
        return try await send(.POST, path, body: body, headers: [("Content-Type", "application/x-www-form-urlencoded")] + headers)
    }

    /// Fetches the sign-in page (for its CSRF cookie and field) and signs in.
    public func signIn(_ name: String, password: String, code: String = "") async throws -> Page {
        _ = try await get("/admin/login")
        return try await post("/admin/login", [("name", name), ("password", password), ("code", code)])
    }

    public func cookie(_ name: String) -> String? { cookies[name] }
    public func setCookie(_ name: String, _ value: String?) { cookies[name] = value }

    private func send(_ method: HTTPMethod, _ path: String, body: String?, headers: [(String, String)]) async throws -> Page {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if !cookies.isEmpty {
            request.headers.add(
                name: "Cookie", value: cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; "))
        }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await Self.client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        let page = Page(status: Int(response.status.code), html: String(buffer: bytes), headers: response.headers)
        for line in page.setCookies {
            let pair = line.split(separator: ";", maxSplits: 1)[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2 else { continue }
            let (name, value) = (String(pair[0]).trimmingCharacters(in: .whitespaces), String(pair[1]))
            cookies[name] = line.contains("Max-Age=0") || value.isEmpty ? nil : value
        }
        if let token = page.csrf { csrf = token }
        return page
    }
}
