import ConclaveProtocol
import Foundation
import MLS

extension ConclaveClient {
    /// Signs in through the network's identity provider (OpenID Connect;
    /// docs/client.md#single-sign-on). This device listens on a loopback
    /// port, keeps the PKCE verifier, and hands the provider's sign-in URL
    /// to `authorize` (the CLI prints it; a test drives the provider). When
    /// the browser comes back with the code, the server verifies the
    /// provider's ID token and registers this profile as a new device, or
    /// signs this profile's device in again. The provider password never
    /// reaches Conclave.
    @discardableResult
    public func loginWithSSO(
        server: String, deviceName: String, timeout: Duration = .seconds(300),
        authorize: @Sendable (String) async throws -> Void
    ) async throws -> [ClientEvent] {
        try await lock.withLock {
            try await self.performSSOLogin(server: server, deviceName: deviceName, timeout: timeout, authorize: authorize)
        }
    }

    private func performSSOLogin(
        server: String, deviceName: String, timeout: Duration, authorize: @Sendable (String) async throws -> Void
    ) async throws -> [ClientEvent] {
        let trimmed = { (url: String) in url.hasSuffix("/") ? String(url.dropLast()) : url }
        if let account, trimmed(account.server) != trimmed(server) { throw ClientError.alreadySignedIn(account.user) }
        let anonymous = HTTPAPI(baseURL: server, token: nil)
        let redirect = try await LoopbackRedirect.open()
        let verifier = Base64URL.encode((0..<32).map { _ in UInt8.random(in: 0...255) })
        let (state, code): (String, String)
        do {
            let challenge = PKCE.challenge(of: verifier)
            let started: SSOStarted = try await anonymous.post(
                "/v1/sso/start", SSOStart(redirectUri: redirect.redirectURI, codeChallenge: challenge))
            try await authorize(started.authorizationUrl)
            // Only a redirect with this sign-in's state counts (state first, then an error or the code).
            let query = try await redirect.callback(state: started.state, timeout: timeout)
            await redirect.close()
            if let error = query["error"] {
                let reason = error.prefix(64).filter { $0.isASCII && ($0.isLetter || $0 == "_") }
                throw ClientError.singleSignOn("the provider refused the sign-in (\(reason))")
            }
            guard let received = query["code"], !received.isEmpty else {
                throw ClientError.singleSignOn("the provider's redirect carries no code: nothing was signed in")
            }
            (state, code) = (started.state, received)
        } catch {
            await redirect.close()
            throw error
        }
        if account != nil {
            try await renewSession { account, signedAt, signature in
                try await anonymous.post(
                    "/v1/sso/finish",
                    SSOFinish(
                        state: state, code: code, codeVerifier: verifier, deviceId: account.device, signedAt: signedAt,
                        signature: Base64Bytes(signature)))
            }
            return []
        }
        return try await registerDevice(server: server) { anonymous, signer, transfer, suite in
            try await anonymous.post(
                "/v1/sso/finish",
                SSOFinish(
                    state: state, code: code, codeVerifier: verifier, deviceName: deviceName,
                    signatureKey: Base64Bytes(signer.publicKey.bytes), cipherSuite: suite.rawValue,
                    transferKey: Base64Bytes(transfer.publicKey.bytes)))
        }
    }
}
