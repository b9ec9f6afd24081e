import ConclaveClient
import ConclaveProtocol
import Testing

/// Expects `body` to be refused by the server with `code`.
public func expectRefused(
    _ code: ErrorCode, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
) async {
    do {
        try await body()
        Issue.record("not refused; expected \(code)", sourceLocation: sourceLocation)
    } catch let error as ClientError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}

/// Expects `body` to be refused by the SDK's own policy check, before
/// anything is sent.
public func expectPolicyRefusal(sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("not refused by policy", sourceLocation: sourceLocation)
    } catch let error as ClientError {
        guard case .policy = error else {
            Issue.record("expected a policy refusal, got \(error)", sourceLocation: sourceLocation)
            return
        }
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}
