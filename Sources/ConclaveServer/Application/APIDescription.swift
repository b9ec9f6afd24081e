import Foundation
import Hummingbird
import Logging

/// The OpenAPI document of the API, as kept in the repository
/// (`Sources/ConclaveServer/Resources/openapi.json`, embedded in the binary
/// by `scripts/embed-openapi.py`), and what the server reads from it: which
/// methods each path has (for `405` and `Allow`).
public enum OpenAPIDocument {
    public static let bytes: [UInt8] = Array(text.utf8)

    /// The `servers` entry as the repository's document spells it; the
    /// served document names the server's public URL there instead.
    public static let placeholderServer = #""url": "http://127.0.0.1:8080""#

    /// The document as served by a server reached at `baseURL`.
    static func served(at baseURL: String) -> [UInt8] {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let range = text.range(of: placeholderServer),
            let url = try? JSONSerialization.data(withJSONObject: baseURL, options: [.fragmentsAllowed, .withoutEscapingSlashes])
        else { return bytes }
        return Array(text.replacingCharacters(in: range, with: #""url": "# + String(decoding: url, as: UTF8.self)).utf8)
    }

    /// One documented path: its segments (nil for a `{parameter}`) and methods.
    private struct PathEntry {
        let segments: [String?]
        let methods: [String]
    }

    private static let paths: [PathEntry] = {
        guard let document = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
            let paths = document["paths"] as? [String: Any]
        else { return [] }
        let verbs = ["get", "put", "post", "delete", "patch", "head", "options"]
        return paths.compactMap { path, item in
            guard let item = item as? [String: Any] else { return nil }
            let segments = path.split(separator: "/", omittingEmptySubsequences: false).map { part -> String? in
                part.hasPrefix("{") && part.hasSuffix("}") ? nil : String(part)
            }
            return PathEntry(segments: segments, methods: verbs.filter { item[$0] != nil }.map { $0.uppercased() })
        }
    }()

    /// The documented methods of the path a request names (empty for a
    /// path the document does not have).
    static func methods(ofPath path: String) -> [String] {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        for entry in paths where entry.segments.count == parts.count {
            let matches = zip(entry.segments, parts).allSatisfy { segment, part in segment.map { $0 == part } ?? !part.isEmpty }
            if matches { return entry.methods }
        }
        return []
    }
}

/// The access log and the request metrics: one line and one sample per
/// answered request, with the method, the route template (never the path
/// itself, which may name a user), the status and the latency; never a
/// header, a token or a body.
struct AccessLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            record(request, context, status: response.status.code, since: start)
            return response
        } catch let error as any HTTPResponseError {
            record(request, context, status: error.status.code, since: start)
            throw error
        } catch {
            record(request, context, status: 500, since: start)
            throw error
        }
    }

    private func record(_ request: Request, _ context: Context, status: Int, since start: ContinuousClock.Instant) {
        let route = context.endpointPath.flatMap { $0.hasPrefix("/") ? Self.template($0) : nil } ?? "unmatched"
        Self.record(method: request.method.rawValue, route: route, status: status, since: start, metrics: metrics, logger: logger)
    }

    /// A request's line in the access log and its sample in the metrics
    /// (also for the WebSocket upgrades taken before routing).
    static func record(
        method: String, route: String, status: Int, since start: ContinuousClock.Instant, metrics: ServerMetrics, logger: Logger
    ) {
        let duration = ContinuousClock.now - start
        metrics.request(method: method, route: route, status: status, duration: duration)
        let milliseconds = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        logger.info(
            "request",
            metadata: [
                "method": "\(method)", "route": "\(route)", "status": "\(status)",
                "latency_ms": "\((milliseconds * 1000).rounded() / 1000)",
            ])
    }

    /// `/v1/admin/users/:name` as the OpenAPI document spells it: `/v1/admin/users/{name}`.
    static func template(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { part in
            part.hasPrefix(":") ? "{\(part.dropFirst())}" : String(part)
        }.joined(separator: "/")
    }
}
