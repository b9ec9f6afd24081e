import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One client at a time per profile: an exclusive `flock` on
/// `profile.lock`, held while the profile's store is open. Two processes
/// (or two clients in one) on one profile would each hold its groups'
/// state in memory and advance it on their own: both could encrypt with
/// the same ratchet generation (one key and nonce for two messages), or
/// commit from the same epoch. The lock ends with the process, however it
/// ends.
final class ProfileLock: Sendable {
    private let descriptor: Int32

    /// Takes the lock, waiting up to `patience` for another client to let
    /// go of it (two commands run one after the other overlap briefly).
    static func take(directory: String, patience: Duration = .seconds(5)) async throws -> ProfileLock {
        let path = directory + "/profile.lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw ClientError.localStore("cannot open profile.lock") }
        let deadline = ContinuousClock.now + patience
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK, ContinuousClock.now < deadline else {
                close(descriptor)
                throw ClientError.localStore(
                    "the profile \(directory) is in use by another conclave client (a `receive --wait`?); "
                        + "run one command at a time per profile, or use another --profile")
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return ProfileLock(descriptor: descriptor)
    }

    private init(descriptor: Int32) { self.descriptor = descriptor }

    /// Closing the file lets go of the lock.
    deinit { close(descriptor) }
}
