import ConclaveProtocol
import Foundation

/// K4: how many key package claims one requester may make, and how many
/// claims of one user's key packages others may make, per minute. Each
/// claim takes a key package of every device of the target, so unbounded
/// claims would drain their stock (leaving only the last-resort package)
/// and enumerate their devices.
struct ClaimBudget: Sendable {
    private let byRequester: RateLimiter<String>
    private let byTarget: RateLimiter<String>

    init(limits: ServerLimits) {
        byRequester = RateLimiter(rate: limits.keyPackageClaimsPerRequester / 60, burst: limits.keyPackageClaimsPerRequester)
        byTarget = RateLimiter(rate: limits.keyPackageClaimsPerTarget / 60, burst: limits.keyPackageClaimsPerTarget)
    }

    /// Spends one claim of `requester` (a device, or a peer network) on
    /// `target` (nil: the requester's own user); 429 with `Retry-After`
    /// when either budget is spent.
    func spend(requester: String, target: UserAddress?, now: Date) throws {
        if let wait = byRequester.spend(for: requester, now: now) {
            throw APIError(.rateLimited, "too many key package claims; try again later", retryAfter: max(1, Int(wait.rounded(.up))))
        }
        if let target, let wait = byTarget.spend(for: target.description, now: now) {
            throw APIError(
                .rateLimited, "too many claims of this user's key packages; try again later", retryAfter: max(1, Int(wait.rounded(.up))))
        }
    }
}
