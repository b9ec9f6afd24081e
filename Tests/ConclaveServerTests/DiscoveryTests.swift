import ConclaveProtocol
import ConclaveServer
import ConclaveTestSupport
import Foundation
import Testing

/// What the server publishes about itself.
@Suite struct DiscoveryTests {
    @Test("The served OpenAPI document is the one in the repository, and well-known names the network")
    func openAPI() async throws {
        try await TestNetwork.run(.sqlite) { network in
            let http = RawHTTP(baseURL: network.url)
            let served = try await http.send(.GET, "/openapi.json")
            let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("Sources/ConclaveServer/Resources/openapi.json")
            #expect(served.status == 200)
            // The repository's document, with the server's own URL in `servers`.
            let kept = String(decoding: try Data(contentsOf: repository), as: UTF8.self)
            #expect(kept.contains(OpenAPIDocument.placeholderServer))
            let expected = kept.replacingOccurrences(of: OpenAPIDocument.placeholderServer, with: "\"url\": \"\(network.url)\"")
            #expect(String(decoding: served.body, as: UTF8.self) == expected)
            let document = try JSONSerialization.jsonObject(with: served.body) as? [String: Any]
            #expect((document?["paths"] as? [String: Any])?.keys.contains("/v1/conversations/{id}/commits") == true)
            // The document lists the closed set of error codes, no more, no fewer.
            let schemas = (document?["components"] as? [String: Any])?["schemas"] as? [String: Any]
            let detail = (schemas?["ErrorDetail"] as? [String: Any])?["properties"] as? [String: Any]
            let codes = (detail?["code"] as? [String: Any])?["enum"] as? [String]
            #expect(codes == ErrorCode.allCases.map(\.rawValue))
            let wellKnown = try await http.send(.GET, "/.well-known/conclave").decode(WellKnown.self)
            #expect(wellKnown.domain.value == "acme.example")
            #expect(wellKnown.keyFingerprint == network.networkKey.publicKey.fingerprint)
        }
    }
}
